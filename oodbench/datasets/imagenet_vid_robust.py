"""ImageNet-Vid-Robust (Shankar et al.): 1,109 anchor frames with up to 20 neighbours each, 30 classes.

Shipped in ``imagenet_vid_ytbb_robust.tar.gz`` under ``imagenet_vid_ytbb_robust/imagenet-vid-robust/``:
``val/ILSVRC2015_val_XXXXXXXX/NNNNNN.JPEG`` frames, ``metadata/pmsets.json`` (anchor key -> neighbour
keys), ``metadata/labels.json`` (frame key -> list of VID class indices), ``misc/imagenet_vid_class_index.json``
(VID index -> [VID wnid, name]) and ``misc/rev_wnid_map.json`` (VID wnid -> member ImageNet wnids).

Manifest: one row per (pm set, frame) — anchor first (``frame_offset`` 0), then its neighbours
(offset = frame-number difference); ``anchor_id`` = the anchor's key; ``label`` = the frame's own VID
classes ("i;j" when several), as imagenet-vid-robust-example and imagenet-testbed score it.
pm-0 = anchor accuracy; pm-10 = anchor and every neighbour correct, over the 1,109 anchors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from oodbench.datasets.common import (
    IMAGES_DIR,
    DatasetLayoutError,
    apply_label_space,
    check_images,
    imagenet_indices,
    join_labels,
    single_archive,
    unpack_or_link,
)
from oodbench.datasets.manifest import staged_dataset_dir, write_manifest

log = logging.getLogger(__name__)

DEFAULT_MEMBERS_UNDER = "imagenet_vid_ytbb_robust/imagenet-vid-robust"
METADATA = (
    "metadata/pmsets.json",
    "metadata/labels.json",
    "misc/imagenet_vid_class_index.json",
    "misc/rev_wnid_map.json",
)


def prepare(dest: Path, options: dict, archives=()) -> Path:
    source = Path(
        options.get("path") or single_archive(archives, "imagenet_vid_robust")
    )
    under = options.get("members_under", DEFAULT_MEMBERS_UNDER)
    with staged_dataset_dir(dest) as staging:
        images = unpack_or_link(source, staging / IMAGES_DIR, members_under=under)
        metadata = read_metadata(images)
        frame = pm_set_rows(metadata["pmsets"], metadata["labels"])
        frame["path"] = [f"{IMAGES_DIR}/{p}" for p in frame["path"]]
        check_images(
            staging, frame["path"].tolist(), options.get("verify_images", "tail")
        )
        classes = {
            "dataset": options.get("name", "imagenet_vid_robust"),
            "source": "imagenet-vid-robust misc/imagenet_vid_class_index.json + misc/rev_wnid_map.json (sorted-wnid indices)",
            "classes": apply_label_space(
                vid_classes(metadata["class_index"], metadata["rev_wnid_map"]),
                options.get("label_space", "subset"),
                "imagenet_vid_robust",
            ),
        }
        write_manifest(frame, classes, staging)
    return dest


def read_metadata(root: Path) -> dict:
    missing = [name for name in METADATA if not (root / name).is_file()]
    if missing:
        raise DatasetLayoutError(
            f"{root}: missing {missing} (expected the imagenet-vid-robust folder layout)"
        )
    load = lambda name: json.loads(
        (root / name).read_text(encoding="utf-8")
    )  # noqa: E731
    return {
        "pmsets": load(METADATA[0]),
        "labels": load(METADATA[1]),
        "class_index": load(METADATA[2]),
        "rev_wnid_map": load(METADATA[3]),
    }


def vid_classes(class_index: dict, rev_wnid_map: dict) -> list[dict]:
    """The 30 VID classes in VID-index order, members = sorted-wnid indices of their ImageNet wnids."""
    classes = []
    for k in range(len(class_index)):
        vid_wnid, name = class_index[str(k)]
        if vid_wnid not in rev_wnid_map:
            raise DatasetLayoutError(
                f"misc/rev_wnid_map.json: no ImageNet classes for VID class {k} ({vid_wnid})"
            )
        members = sorted(
            imagenet_indices(rev_wnid_map[vid_wnid], "misc/rev_wnid_map.json")
        )
        classes.append({"name": name, "imagenet": members})
    return classes


def pm_set_rows(pmsets: dict, labels: dict) -> pd.DataFrame:
    """Anchor + neighbour rows for every pm set (anchors sorted; neighbours by offset)."""
    rows = []
    for anchor in sorted(pmsets):
        anchor_number = _frame_number(anchor)
        members = [(0, anchor)] + sorted(
            (_frame_number(n) - anchor_number, n) for n in pmsets[anchor]
        )
        rows += [(anchor, offset, key) for offset, key in members]
    frame = pd.DataFrame(rows, columns=["anchor_id", "frame_offset", "key"])
    unlabelled = sorted(set(frame["key"]) - set(labels))
    if unlabelled:
        raise DatasetLayoutError(
            f"metadata/labels.json: no label for {len(unlabelled)} frame(s), e.g. {unlabelled[:3]}"
        )
    far = frame.loc[frame["frame_offset"].abs() > 10]
    if len(far):
        log.warning(
            "%d neighbour frame(s) lie more than 10 frames from their anchor, e.g. %s",
            len(far),
            far["key"].iloc[0],
        )
    shared = frame["key"].duplicated(keep=False)
    frame["image_id"] = frame["key"].where(
        ~shared, frame["key"] + "@" + frame["anchor_id"]
    )
    frame["label"] = join_labels(labels[key] for key in frame["key"])
    frame["path"] = frame["key"]
    log.info("ImageNet-Vid-Robust: %d pm sets, %d frame rows", len(pmsets), len(frame))
    return frame[["image_id", "path", "label", "anchor_id", "frame_offset"]]


def _frame_number(key: str) -> int:
    stem = Path(key).stem
    if not stem.isdigit():
        raise DatasetLayoutError(
            f"metadata/pmsets.json: frame key {key!r} does not end in <number>.JPEG"
        )
    return int(stem)
