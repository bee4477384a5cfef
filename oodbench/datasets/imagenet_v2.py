"""ImageNet-V2 MatchedFrequency: 10,000 images, 10 per class.

Archive layout: ``imagenetv2-matched-frequency-format-val/<class_number>/<hash>.jpeg`` where
``class_number`` ("0".."999") *is* the sorted-wnid ImageNet index. The label is ``int(folder)``;
never the position of the folder in a sorted listing — a string sort ("0", "1", "10", "100", ...)
is what makes torchvision's ImageFolder relabel this dataset wrongly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from oodbench.datasets.common import (
    IMAGES_DIR,
    DatasetLayoutError,
    check_images,
    single_archive,
    singleton_classes,
    unpack_or_link,
)
from oodbench.datasets.manifest import staged_dataset_dir, write_manifest

log = logging.getLogger(__name__)

TOP_DIR = "imagenetv2-matched-frequency-format-val"
SHA256 = "a32004f9e773279307499059d320336a23ccdc62cb32063da29bae9bd04c122c"


def prepare(dest: Path, options: dict, archives=()) -> Path:
    source = Path(options.get("path") or single_archive(archives, "imagenet_v2"))
    with staged_dataset_dir(dest) as staging:
        images = unpack_or_link(source, staging / IMAGES_DIR)
        frame = scan_class_number_folders(images)
        frame["path"] = [f"{IMAGES_DIR}/{p}" for p in frame["path"]]
        check_images(
            staging, frame["path"].tolist(), options.get("verify_images", "tail")
        )
        classes = {
            "dataset": options.get("name", "imagenet_v2"),
            "source": f"ImageNetV2 {TOP_DIR}: folder name = sorted-wnid ImageNet index",
            "classes": singleton_classes(range(1000)),
        }
        write_manifest(frame, classes, staging)
    return dest


def scan_class_number_folders(images: Path) -> pd.DataFrame:
    """One row per image below ``<TOP_DIR>/<int>/``, label = int(folder name), sorted by (label, file)."""
    top = images / TOP_DIR if (images / TOP_DIR).is_dir() else images
    folders = [d for d in top.iterdir() if d.is_dir()]
    bad = [
        d.name for d in folders if not d.name.isdigit() or not 0 <= int(d.name) < 1000
    ]
    if not folders or bad:
        raise DatasetLayoutError(
            f"{top}: expected class folders named 0..999 ({TOP_DIR}/<class_number>/<hash>.jpeg); "
            f"{'found none' if not folders else f'unexpected folders {bad[:5]}'}"
        )
    rows = [
        (int(folder.name), image)
        for folder in folders
        for image in folder.iterdir()
        if image.is_file() and not image.name.startswith(".")
    ]
    rows.sort(key=lambda row: (row[0], row[1].name))
    frame = pd.DataFrame(
        {
            "image_id": [f"{label}/{image.stem}" for label, image in rows],
            "path": [image.relative_to(images).as_posix() for _, image in rows],
            "label": [label for label, _ in rows],
        }
    )
    log.info("ImageNet-V2: %d images in %d class folders", len(frame), len(folders))
    return frame
