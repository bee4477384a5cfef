"""ImageNet (ILSVRC2012) validation set: 50,000 images, 1000 classes in sorted-wnid order.

Login-gated, so the user places the files and points the config at them:

- ``path``: ``ILSVRC2012_img_val.tar`` (flat: ``ILSVRC2012_val_00000001.JPEG`` ...), or the folder it
  was extracted to — flat, or already sorted into ``<wnid>/`` class folders.
- ``labels`` (needed for the flat layouts): the devkit ``ILSVRC2012_devkit_t12.tar.gz`` (or its
  extracted folder), or Kaggle's ``LOC_val_solution.csv``.

The devkit's ground-truth IDs follow ``meta.mat`` order, not sorted-wnid order: they are mapped ID ->
wnid -> sorted index (as torchvision does); image 00000001 -> 65 (sea snake) is the sanity check.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.datasets.common import (
    IMAGES_DIR,
    DatasetLayoutError,
    check_images,
    imagenet_indices,
    imagenet_wnids,
    relative_paths,
    singleton_classes,
    unpack_or_link,
)
from oodbench.datasets.download import verify_file
from oodbench.datasets.manifest import staged_dataset_dir, write_manifest

log = logging.getLogger(__name__)

VAL_TAR_SHA256 = "c7e06a6c0baccf06d8dbeb6577d71efff84673a5dbdd50633ab44f8ea0456ae0"
VAL_IMAGE = re.compile(r"^ILSVRC2012_val_(\d{8})\.(JPEG|jpeg|jpg|JPG|png|PNG)$")
DEVKIT_META = "meta.mat"
DEVKIT_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
# image 00000001 is a sea snake (index 65) in every correct labelling
SANITY_IMAGE, SANITY_INDEX = "ILSVRC2012_val_00000001", 65

LAYOUT_HELP = """\
ImageNet validation is login-gated: download it yourself and set in the config
  datasets.imagenet.path:   ILSVRC2012_img_val.tar (6,744,924,160 bytes), or the folder holding
                            ILSVRC2012_val_00000001.JPEG ... ILSVRC2012_val_00050000.JPEG
                            (flat, or sorted into <wnid>/ class folders)
  datasets.imagenet.labels: ILSVRC2012_devkit_t12.tar.gz (or its extracted folder), or
                            LOC_val_solution.csv (not needed for <wnid>/ class folders)"""


def prepare(dest: Path, options: dict, archives=()) -> Path:
    """Build ``dest`` (= ``data/imagenet``) from the user's files; returns ``dest``."""
    source = _required_path(options.get("path"), "datasets.imagenet.path")
    if source.is_file() and options.get("verify_checksum", True):
        verify_file(
            source,
            sha256=options.get("sha256") or VAL_TAR_SHA256,
            md5=options.get("md5"),
        )
    with staged_dataset_dir(dest) as staging:
        images = unpack_or_link(source, staging / IMAGES_DIR)
        frame = _images_with_wnids(images, options)
        frame["path"] = [f"{IMAGES_DIR}/{p}" for p in frame["path"]]
        check_images(
            staging, frame["path"].tolist(), options.get("verify_images", "tail")
        )
        classes = {
            "dataset": options.get("name", "imagenet"),
            "source": "ILSVRC2012 validation; classes = sorted wnids (index = position)",
            "classes": singleton_classes(range(1000)),
        }
        write_manifest(frame[["image_id", "path", "label"]], classes, staging)
    return dest


def _required_path(value, key: str) -> Path:
    if not value:
        raise DatasetLayoutError(f"{key} is not set.\n{LAYOUT_HELP}")
    path = Path(value).expanduser()
    if not path.exists():
        raise DatasetLayoutError(f"{key} = {path} does not exist.\n{LAYOUT_HELP}")
    return path


def _images_with_wnids(images: Path, options: dict) -> pd.DataFrame:
    """image_id, path (relative to ``images``), label: from class folders or a labels file."""
    flat = sorted(
        p for p in images.iterdir() if p.is_file() and VAL_IMAGE.match(p.name)
    )
    if flat:
        labels_path = _required_path(options.get("labels"), "datasets.imagenet.labels")
        wnid_of = read_validation_wnids(labels_path)
        ids = [p.stem for p in flat]
        missing = [i for i in ids if i not in wnid_of]
        if missing:
            raise DatasetLayoutError(
                f"{labels_path}: no label for {len(missing)} image(s), e.g. {missing[:3]}"
            )
        wnids = [wnid_of[i] for i in ids]
        files = flat
    else:
        files = sorted(
            p for p in images.glob("n*/*") if p.is_file() and VAL_IMAGE.match(p.name)
        )
        if not files:
            raise DatasetLayoutError(
                f"{images}: no ILSVRC2012_val_*.JPEG images found.\n{LAYOUT_HELP}"
            )
        files.sort(key=lambda p: p.name)
        ids = [p.stem for p in files]
        wnids = [p.parent.name for p in files]
    labels = imagenet_indices(wnids, str(images))
    frame = pd.DataFrame(
        {"image_id": ids, "path": relative_paths(files, images), "label": labels}
    )
    _sanity_check(frame)
    log.info(
        "ImageNet validation: %d images, %d classes present",
        len(frame),
        frame["label"].nunique(),
    )
    return frame


def _sanity_check(frame: pd.DataFrame) -> None:
    first = frame.loc[frame["image_id"] == SANITY_IMAGE, "label"]
    if len(frame) == 50000 and (first.empty or int(first.iloc[0]) != SANITY_INDEX):
        raise DatasetLayoutError(
            f"{SANITY_IMAGE} must have label {SANITY_INDEX} (sea snake) but has {first.tolist()}: "
            "the labels are not in sorted-wnid order (wrong labels file?)"
        )


# ----------------------------------------------------------------------------- labels


def read_validation_wnids(path: Path) -> dict[str, str]:
    """image id (``ILSVRC2012_val_00000001``) -> wnid, from the devkit or LOC_val_solution.csv."""
    path = Path(path)
    if path.is_file() and path.suffix == ".csv":
        return _wnids_from_loc_csv(path)
    if path.is_file() and tarfile.is_tarfile(path):
        meta, truth = _devkit_members_from_tar(path)
    elif path.is_dir():
        meta = _find_file(path, DEVKIT_META)
        truth = _find_file(path, DEVKIT_TRUTH)
        meta, truth = meta.read_bytes(), truth.read_bytes()
    else:
        raise DatasetLayoutError(
            f"{path}: expected the devkit .tar.gz / folder or LOC_val_solution.csv.\n{LAYOUT_HELP}"
        )
    return _wnids_from_devkit(meta, truth, str(path))


def _wnids_from_loc_csv(path: Path) -> dict[str, str]:
    table = pd.read_csv(path)
    if not {"ImageId", "PredictionString"} <= set(table.columns):
        raise DatasetLayoutError(
            f"{path}: expected columns ImageId,PredictionString; found {list(table.columns)}"
        )
    # PredictionString repeats "wnid xmin ymin xmax ymax"; every box of an image has the class.
    first = table["PredictionString"].astype(str).str.split(n=1).str[0]
    return dict(zip(table["ImageId"].astype(str), first, strict=True))


def _devkit_members_from_tar(path: Path) -> tuple[bytes, bytes]:
    found = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            base = Path(member.name).name
            if member.isfile() and base in (DEVKIT_META, DEVKIT_TRUTH):
                found[base] = tar.extractfile(member).read()
    missing = [n for n in (DEVKIT_META, DEVKIT_TRUTH) if n not in found]
    if missing:
        raise DatasetLayoutError(
            f"{path}: devkit lacks {missing} (expected ILSVRC2012_devkit_t12/data/...)"
        )
    return found[DEVKIT_META], found[DEVKIT_TRUTH]


def _find_file(root: Path, name: str) -> Path:
    hits = sorted(root.rglob(name))
    if not hits:
        raise DatasetLayoutError(f"{root}: devkit file {name} not found")
    return hits[0]


def _wnids_from_devkit(
    meta_bytes: bytes, truth_bytes: bytes, source: str
) -> dict[str, str]:
    from scipy.io import loadmat

    synsets = loadmat(io.BytesIO(meta_bytes), squeeze_me=True)["synsets"]
    leaves = synsets[np.asarray(synsets["num_children"], dtype=int) == 0]
    id_to_wnid = {
        int(i): str(w)
        for i, w in zip(leaves["ILSVRC2012_ID"], leaves["WNID"], strict=True)
    }
    truth = np.array(truth_bytes.decode().split(), dtype=int)
    unknown = sorted(set(truth.tolist()) - set(id_to_wnid))
    if unknown:
        raise DatasetLayoutError(
            f"{source}: ground-truth IDs {unknown[:5]} are not leaf synsets in meta.mat"
        )
    if len(id_to_wnid) != 1000 or set(id_to_wnid.values()) - set(imagenet_wnids()):
        log.warning(
            "%s: meta.mat has %d leaf synsets (1000 expected)", source, len(id_to_wnid)
        )
    return {
        f"ILSVRC2012_val_{i:08d}": id_to_wnid[int(k)]
        for i, k in enumerate(truth, start=1)
    }
