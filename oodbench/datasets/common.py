"""Helpers shared by the dataset preparers: the ImageNet class order, class lists, file checks.

ImageNet class index k (0..999) is the position of the wnid in the lexicographically sorted list
of the 1000 ILSVRC2012 wnids (``data/imagenet_wnids.txt``, copied from timm's
``imagenet_synsets.txt``); every dataset maps its classes onto these indices.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from oodbench.datasets.download import extract_archive

log = logging.getLogger(__name__)

IMAGES_DIR = "images"
VERIFY_MODES = ("tail", "decode", "none")
# A complete JPEG ends with the EOI marker; trailing bytes after it occur in the wild, so look
# for it in the last KiB rather than in the last two bytes only.
_TAIL_BYTES = 1024
_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"IEND"


class DatasetLayoutError(FileNotFoundError):
    """A user-provided or downloaded dataset does not have the expected files; the message says which."""


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC2012 wnids in sorted order (index = ImageNet class index)."""
    text = (
        resources.files("oodbench.datasets")
        .joinpath("data/imagenet_wnids.txt")
        .read_text()
    )
    wnids = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(wnids) != 1000 or list(wnids) != sorted(wnids):
        raise RuntimeError(
            "oodbench/datasets/data/imagenet_wnids.txt must hold the 1000 sorted wnids"
        )
    return wnids


@lru_cache(maxsize=1)
def wnid_to_index() -> dict[str, int]:
    return {wnid: k for k, wnid in enumerate(imagenet_wnids())}


def imagenet_indices(wnids: Iterable[str], source: str) -> list[int]:
    """Sorted-wnid indices of ``wnids``; an unknown wnid is an error naming ``source``."""
    table = wnid_to_index()
    unknown = [w for w in wnids if w not in table]
    if unknown:
        raise DatasetLayoutError(
            f"{source}: {len(unknown)} unknown ImageNet wnid(s), e.g. {unknown[:3]}"
        )
    return [table[w] for w in wnids]


def singleton_classes(
    indices: Sequence[int], names: Sequence[str] | None = None
) -> list[dict]:
    """One dataset class per ImageNet index (plain or subset ImageNet labels)."""
    names = names if names is not None else [imagenet_wnids()[k] for k in indices]
    return [
        {"name": str(name), "imagenet": [int(k)]}
        for name, k in zip(names, indices, strict=True)
    ]


def add_distractor_classes(classes: list[dict]) -> list[dict]:
    """Append every ImageNet class not covered by ``classes`` as a class no image is labelled with.

    Scoring takes the argmax over dataset classes; with the distractors all 1000 ImageNet logits
    compete (robustness_metrics' plain 1000-way accuracy) instead of only the dataset's subset
    (imagenet-testbed's class_sublist). Labels keep their indices because distractors go last.
    """
    covered = {k for entry in classes for k in entry["imagenet"]}
    wnids = imagenet_wnids()
    extra = [
        {"name": f"other:{wnids[k]}", "imagenet": [k]}
        for k in range(1000)
        if k not in covered
    ]
    return list(classes) + extra


def apply_label_space(
    classes: list[dict], label_space: str, dataset: str
) -> list[dict]:
    """``subset`` (imagenet-testbed, default) or ``imagenet1k`` (all 1000 logits compete)."""
    if label_space == "subset":
        return classes
    if label_space == "imagenet1k":
        return add_distractor_classes(classes)
    raise ValueError(
        f"datasets.{dataset}.label_space: expected 'subset' or 'imagenet1k', got {label_space!r}"
    )


def join_labels(label_sets: Iterable[Iterable[int]]) -> list[str]:
    """``[[3], [4, 1]]`` -> ``["3", "1;4"]`` (the manifest's multi-label form)."""
    return [";".join(str(k) for k in sorted(set(labels))) for labels in label_sets]


def find_one(root: Path, name: str, what: str, *, dirs: bool = False) -> Path:
    """The unique file (or folder) called ``name`` below ``root``; an error names both otherwise."""
    hits = sorted(p for p in root.rglob(name) if (p.is_dir() if dirs else p.is_file()))
    if not hits:
        raise DatasetLayoutError(
            f"{root}: no {'folder' if dirs else 'file'} named {name!r} found ({what})"
        )
    if len(hits) > 1:
        raise DatasetLayoutError(
            f"{root}: several {name!r} found ({[str(h) for h in hits[:3]]}); expected one"
        )
    return hits[0]


def unpack_or_link(
    source: Path,
    images_dir: Path,
    *,
    password: str | None = None,
    members_under: str | None = None,
) -> Path:
    """Put a dataset's files at ``images_dir``: extract an archive there, or symlink a folder."""
    source = Path(source).expanduser()
    if source.is_dir():
        os.symlink(source.resolve(), images_dir, target_is_directory=True)
        log.info("linked %s -> %s", images_dir, source.resolve())
        return images_dir
    return extract_archive(
        source, images_dir, password=password, members_under=members_under
    )


def single_archive(archives, dataset: str) -> Path:
    """The one downloaded archive a rule passes in (Snakemake ``input``)."""
    archives = list(archives)
    if len(archives) != 1:
        raise ValueError(
            f"{dataset}: expected one downloaded archive (or datasets.{dataset}.path), got {archives}"
        )
    return Path(archives[0])


def relative_paths(files: Iterable[Path], root: Path) -> list[str]:
    return [f.relative_to(root).as_posix() for f in files]


# ----------------------------------------------------------------------------- image checks


def check_images(
    root: Path, paths: Sequence[str], mode: str = "tail", *, threads: int = 16
) -> None:
    """Fail on the first truncated/undecodable image, naming the file.

    ``tail`` (default): JPEGs must contain the end-of-image marker and PNGs the IEND chunk in their
    last KiB — one small read per file, cheap enough for ImageNet-C's 3.75 M files.
    ``decode``: fully decode every image with PIL (slow). ``none``: skip (predict still fails on a
    broken file, naming it).
    """
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify_images: expected one of {VERIFY_MODES}, got {mode!r}")
    if mode == "none" or not len(paths):
        return
    check = _tail_ok if mode == "tail" else _decodes
    full = [root / p for p in paths]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = np.fromiter(
            pool.map(check, full, chunksize=256), dtype=bool, count=len(full)
        )
    bad = np.flatnonzero(~results)
    if bad.size:
        names = [str(full[i]) for i in bad[:5]]
        raise DatasetLayoutError(
            f"{len(bad)} truncated or unreadable image file(s), e.g. {names}; "
            "re-download the archive (delete it and the dataset folder) or remove the file"
        )
    log.info("checked %d images (%s): all complete", len(full), mode)


def _tail_ok(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read()
    except OSError:
        return False
    if head.startswith(b"\xff\xd8"):
        return _JPEG_EOI in tail
    if head.startswith(b"\x89PNG"):
        return _PNG_IEND in tail
    return size > 0


def _decodes(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception:  # noqa: BLE001 - any decoder failure means the file is unusable
        return False
    return True
