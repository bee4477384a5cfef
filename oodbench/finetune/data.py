"""Training data for FixRes: the ImageNet training set (manual download) and the demo's split.

ImageNet's training set needs a login, so the user places it under the raw folder
(default ``data/raw/imagenet_train``) in one of the two layouts ImageNet ships:

- ``ILSVRC2012_img_train.tar``: a tar of 1000 per-class tars ``<wnid>.tar`` (it is unpacked
  once into ``train/``; a killed unpack resumes at the first class not yet finished), or
- ``train/<wnid>/*.JPEG``: the already extracted folder (a symlink is fine).

:func:`prepare_imagenet_train` writes the prepared dataset ``data/imagenet_train/`` (manifest
contract §1) the way the validation set is prepared (`oodbench.datasets.imagenet.prepare`):
``images/`` (a symlink to the extracted ``train/`` folder; the images are never copied),
``manifest.csv`` with paths ``images/<wnid>/<file>`` relative to it, labels in sorted-wnid order
(= the 1000 ImageNet logits), ``classes.json`` with 1000 singleton classes, and ``.prepared``
last. Every image is checked for truncation first (`check_images`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.datasets.common import IMAGES_DIR, check_images, imagenet_wnids, singleton_classes, unpack_or_link
from oodbench.datasets.demo import TRAIN_STRIP_FRACTION as DEMO_TRAIN_FRACTION
from oodbench.datasets.demo import holdout_boxes
from oodbench.datasets.manifest import (
    class_members,
    manifest_digest,
    read_classes,
    read_manifest,
    staged_dataset_dir,
    write_manifest,
)

log = logging.getLogger(__name__)

TRAIN_TAR_NAME = "ILSVRC2012_img_train.tar"
TRAIN_FOLDER_NAME = "train"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
DEFAULT_RAW_DIR = Path("data/raw/imagenet_train")
DEFAULT_PREPARED_DIR = Path("data/imagenet_train")


class TrainingDataMissing(FileNotFoundError):
    """The ImageNet training set is not where it is expected; the message says what to put where."""


def missing_data_message(raw_dir: Path) -> str:
    return (
        f"the ImageNet training set (needed for FixRes fine-tuning) was not found under {raw_dir}/.\n"
        "Download it from the ImageNet site (login required) and either\n"
        f"  - put the archive at {raw_dir / TRAIN_TAR_NAME} (a tar of 1000 per-class tars "
        "n01440764.tar ... n15075141.tar; it is unpacked once into "
        f"{raw_dir / TRAIN_FOLDER_NAME}/), or\n"
        f"  - put (or symlink) the extracted folder at {raw_dir / TRAIN_FOLDER_NAME}/ with one "
        "sub-folder per wnid holding its JPEG files (train/n01440764/n01440764_10026.JPEG, ...).\n"
        "To skip FixRes instead, set fixres.enabled: false in the config."
    )


def locate_train_folder(raw_dir: str | os.PathLike) -> Path:
    """The extracted ``train/`` folder, unpacking the official tar first when only it exists."""
    raw_dir = Path(raw_dir)
    folder = raw_dir / TRAIN_FOLDER_NAME
    if folder.is_dir():
        return folder
    archive = raw_dir / TRAIN_TAR_NAME
    if archive.is_file():
        return extract_train_tar(archive, folder)
    raise TrainingDataMissing(missing_data_message(raw_dir))


def extract_train_tar(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack the tar of per-class tars into ``dest/<wnid>/`` via ``dest.partial`` and one rename.

    Each class goes to ``<wnid>.tmp`` and is renamed when complete, so a killed run resumes by
    skipping the classes already there (the outer tar is still read sequentially past them).
    """
    from tqdm import tqdm

    archive, dest = Path(archive), Path(dest)
    staging = dest.with_name(dest.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r|") as outer:
        for member in tqdm(outer, desc=f"unpacking {archive.name}", unit="class", mininterval=10):
            if not member.isfile() or not member.name.endswith(".tar"):
                continue
            wnid = Path(member.name).stem
            if (staging / wnid).is_dir():
                continue
            _extract_class_tar(outer.extractfile(member), staging / wnid, archive, member.name)
    os.replace(staging, dest)
    return dest


def _extract_class_tar(stream, class_dir: Path, archive: Path, name: str) -> None:
    partial = class_dir.with_name(class_dir.name + ".tmp")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as inner:
            for item in inner:
                if not item.isfile():
                    continue
                # Flatten: ImageNet's class tars hold bare file names; anything nested is flattened
                # by its base name, which also keeps '..' or absolute names out of the folder.
                target = partial / Path(item.name).name
                with inner.extractfile(item) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except tarfile.TarError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise ValueError(f"{archive}: member {name} is not a readable tar ({err}); is the download complete?") from err
    os.replace(partial, class_dir)


def scan_train_folder(folder: str | os.PathLike, wnids: list[str]) -> pd.DataFrame:
    """One row per image of ``folder/<wnid>/``: image_id (file stem), path relative to ``folder``, label."""
    folder = Path(folder)
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    missing = sorted(set(wnids) - set(found))
    extra = sorted(set(found) - set(wnids))
    if missing or extra:
        raise ValueError(
            f"{folder}: expected exactly the 1000 ImageNet wnid folders; "
            f"missing {len(missing)} (e.g. {missing[:3]}), unexpected {len(extra)} (e.g. {extra[:3]})"
        )
    frames = []
    for label, wnid in enumerate(wnids):
        names = sorted(
            entry.name
            for entry in os.scandir(folder / wnid)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES)
        )
        if not names:
            raise ValueError(f"{folder / wnid}: no images (.JPEG) in this class folder; is the extraction complete?")
        frames.append(pd.DataFrame({"wnid": wnid, "name": names, "label": label}))
    table = pd.concat(frames, ignore_index=True)
    table["image_id"] = table["name"].str.rsplit(".", n=1).str[0]
    table["path"] = table["wnid"] + "/" + table["name"]
    return table[["image_id", "path", "label"]]


def imagenet_train_classes() -> dict:
    return {
        "dataset": "imagenet_train",
        "source": "ILSVRC2012 training set; classes in sorted-wnid order (oodbench/datasets/data)",
        # the same class list as the prepared validation set, so train and test labels agree
        "classes": singleton_classes(range(1000)),
    }


def prepare_imagenet_train(
    raw_dir: str | os.PathLike = DEFAULT_RAW_DIR,
    dest_dir: str | os.PathLike = DEFAULT_PREPARED_DIR,
    *,
    wnids: list[str] | None = None,
    classes: dict | None = None,
    verify_images: str = "tail",
) -> Path:
    """Build ``dest_dir/{images,manifest.csv,classes.json,.prepared}`` for the training set in ``raw_dir``.

    ``wnids``/``classes`` default to the 1000 ImageNet classes (tests pass fewer);
    ``verify_images``: ``tail`` | ``decode`` | ``none``, as for the validation set.
    """
    folder = locate_train_folder(raw_dir)
    with staged_dataset_dir(dest_dir) as staging:
        unpack_or_link(folder, staging / IMAGES_DIR)
        # scanned at its own path so that layout errors name the user's folder
        table = scan_train_folder(folder, list(wnids or imagenet_wnids()))
        table["path"] = IMAGES_DIR + "/" + table["path"]
        check_images(staging, table["path"].tolist(), verify_images)
        write_manifest(table, classes or imagenet_train_classes(), staging)
    return Path(dest_dir)


# ----------------------------------------------------------------------------- reading for training


@dataclass(frozen=True)
class TrainingSet:
    """What the trainer needs: absolute image paths, one class index per image, class members."""

    manifest: Path
    paths: np.ndarray
    labels: np.ndarray
    members: list[list[int]]
    digest: str

    def __len__(self) -> int:
        return len(self.paths)


def load_training_set(manifest_path: str | os.PathLike) -> TrainingSet:
    """Read a prepared training manifest; every row must carry exactly one class index."""
    manifest_path = Path(manifest_path)
    # Files were checked when the dataset was prepared; re-checking 1.28M paths costs minutes.
    frame = read_manifest(manifest_path, check_files=False)
    labels = frame["label"].astype(str)
    multi = labels.str.contains(";")
    if multi.any():
        raise ValueError(
            f"{manifest_path}: training rows need a single class index in 'label'; "
            f"found multi-label values, e.g. {labels[multi].tolist()[:3]}"
        )
    classes = read_classes(manifest_path.parent / "classes.json")
    root = str(manifest_path.parent.resolve()) + os.sep
    return TrainingSet(
        manifest=manifest_path,
        paths=(root + frame["path"]).to_numpy(dtype=object),
        labels=labels.astype(np.int64).to_numpy(),
        members=class_members(classes),
        digest=manifest_digest(manifest_path),
    )


# ----------------------------------------------------------------------------- demo training split

def build_demo_train_split(
    dest_dir: str | os.PathLike,
    photos: list,
    classes: dict,
    *,
    crops_per_photo: int = 16,
    fraction: float = DEMO_TRAIN_FRACTION,
    seed: int = 0,
    short_side_range: tuple[int, int] = (300, 400),
    area_range: tuple[float, float] = (0.5, 1.0),
    ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
) -> Path:
    """A small training set from the held-out strip of each photo (see :func:`holdout_boxes`).

    ``photos``: ``[(label, PIL.Image), ...]`` with ``label`` an index into ``classes["classes"]``
    (e.g. the demo's superclasses); several photos may share a label. Crops are seeded
    random-resized crops inside the strip, saved as PNG (no second JPEG loss).
    """
    from oodbench.datasets.demo import random_resized_box, render_box
    from oodbench.datasets.manifest import staged_dataset_dir, write_manifest

    if crops_per_photo < 1:
        raise ValueError(f"crops_per_photo must be >= 1, got {crops_per_photo}")
    rows = []
    with staged_dataset_dir(dest_dir) as staging:
        (staging / "images").mkdir()
        for p, (label, photo) in enumerate(photos):
            # Cut the strip out first: resampling filters read pixels beyond a box's edge, so
            # cropping inside the whole photo would leak test-region pixels into the border.
            strip = photo.crop(holdout_boxes(photo.width, photo.height, fraction)[1])
            rng = np.random.default_rng([seed, p])
            for k in range(crops_per_photo):
                box = random_resized_box(rng, strip.width, strip.height, area_range, ratio_range)
                short_side = int(rng.integers(short_side_range[0], short_side_range[1] + 1))
                image = render_box(strip, box, short_side, flip=bool(rng.random() < 0.5))
                image_id = f"p{p}_{k:03d}"
                path = f"images/{image_id}.png"
                image.save(staging / path, format="PNG")
                rows.append({"image_id": image_id, "path": path, "label": str(int(label))})
        source = (
            f"oodbench.finetune.data.build_demo_train_split: {crops_per_photo} random-resized crops per "
            f"photo from its held-out strip (last {fraction:.2f} of the longer side), seed {seed}; "
            f"classes from {classes.get('source', '?')}"
        )
        write_manifest(rows, {**classes, "dataset": Path(dest_dir).name, "source": source}, staging)
    return Path(dest_dir)


def build_demo_train(dest_dir: str | os.PathLike, **options) -> Path:
    """The demo's training split: every demo photo (box-cut), labelled by its superclass."""
    from oodbench.datasets.demo import DEMO_SUPERCLASSES, demo_classes, load_demo_photo

    photos = [(label, load_demo_photo(spec.superclass)) for label, spec in enumerate(DEMO_SUPERCLASSES)]
    return build_demo_train_split(dest_dir, photos, demo_classes("demo_train", "oodbench.datasets.demo"), **options)
