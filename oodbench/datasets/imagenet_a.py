"""ImageNet-A: 7,500 natural adversarial images of 200 ImageNet classes.

Archive layout: ``imagenet-a/<wnid>/<file>.jpg`` (200 wnid folders, plus a README). Classes are the
folder wnids in sorted order, each a singleton of its sorted-wnid ImageNet index — the same ascending
200-index list as imagenet-testbed's ``class_sublist``, robustness_metrics and timm.

``label_space``: ``subset`` (default, imagenet-testbed: the argmax runs over the 200 classes' logits)
or ``imagenet1k`` (robustness_metrics' default reports: plain 1000-way argmax).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from oodbench.datasets.common import (
    IMAGES_DIR,
    DatasetLayoutError,
    apply_label_space,
    check_images,
    imagenet_indices,
    single_archive,
    singleton_classes,
    unpack_or_link,
)
from oodbench.datasets.manifest import staged_dataset_dir, write_manifest

log = logging.getLogger(__name__)

TOP_DIR = "imagenet-a"
SHA256 = "3bb3632277e6ba6392ea64c02ddbf4dd2266c9caffd6bc09c9656d28f012589e"


def prepare(dest: Path, options: dict, archives=()) -> Path:
    source = Path(options.get("path") or single_archive(archives, "imagenet_a"))
    with staged_dataset_dir(dest) as staging:
        images = unpack_or_link(source, staging / IMAGES_DIR)
        frame, classes = scan_wnid_folders(images, options.get("name", "imagenet_a"))
        classes["classes"] = apply_label_space(
            classes["classes"], options.get("label_space", "subset"), "imagenet_a"
        )
        frame["path"] = [f"{IMAGES_DIR}/{p}" for p in frame["path"]]
        check_images(
            staging, frame["path"].tolist(), options.get("verify_images", "tail")
        )
        write_manifest(frame, classes, staging)
    return dest


def scan_wnid_folders(images: Path, dataset: str) -> tuple[pd.DataFrame, dict]:
    """Rows for ``<wnid>/<file>`` images; class k = k-th wnid folder in sorted order."""
    top = images / TOP_DIR if (images / TOP_DIR).is_dir() else images
    folders = sorted(d for d in top.iterdir() if d.is_dir() and d.name.startswith("n"))
    if not folders:
        raise DatasetLayoutError(
            f"{top}: expected wnid class folders ({TOP_DIR}/<wnid>/<file>.jpg)"
        )
    wnids = [d.name for d in folders]
    indices = imagenet_indices(wnids, str(top))
    rows = [
        (k, image)
        for k, folder in enumerate(folders)
        for image in sorted(folder.iterdir())
        if image.is_file() and not image.name.startswith(".")
    ]
    frame = pd.DataFrame(
        {
            "image_id": [f"{wnids[k]}/{image.name}" for k, image in rows],
            "path": [image.relative_to(images).as_posix() for _, image in rows],
            "label": [k for k, _ in rows],
        }
    )
    classes = {
        "dataset": dataset,
        "source": f"{TOP_DIR} folder wnids, sorted; members = sorted-wnid ImageNet index",
        "classes": singleton_classes(indices, wnids),
    }
    log.info("%s: %d images in %d classes", dataset, len(frame), len(folders))
    return frame, classes
