"""The manifest contract (docs/contracts.md §1): read, validate and write a prepared dataset.

A prepared dataset is a folder ``data/<dataset>/`` holding ``manifest.csv`` (one row per image,
row order = logits row order), ``classes.json`` (dataset class -> member ImageNet indices), the
images (or relative paths to them) and ``.prepared``, written last. Every writer here builds the
folder under a temporary sibling name and renames it into place, so a killed job never leaves a
folder that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

MANIFEST_NAME = "manifest.csv"
CLASSES_NAME = "classes.json"
PREPARED_NAME = ".prepared"
REQUIRED_COLUMNS = ("image_id", "path", "label")
NUM_IMAGENET_CLASSES = 1000
# One index, or several joined by ';' (multi-label frames: any of them is correct).
LABEL_PATTERN = r"^\d+(;\d+)*$"


class ManifestError(ValueError):
    """A manifest or classes file breaks the contract; the message names the file and the field."""


# ----------------------------------------------------------------------------- reading


def manifest_digest(path: str | os.PathLike) -> str:
    """sha256 (hex) of the manifest file's bytes; logits record it to detect a re-prepared dataset."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_classes(path: str | os.PathLike) -> dict:
    """Load and validate ``classes.json``; returns the parsed dict."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(
            f"{path}: classes file not found (prepare the dataset first)"
        )
    try:
        classes = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path}: not valid JSON ({error})") from error
    validate_classes(classes, source=str(path))
    return classes


def validate_classes(classes: Mapping, source: str = "classes.json") -> None:
    """Check the classes.json structure: dataset, source, classes[{name, imagenet: [0..999]}]."""
    if not isinstance(classes, Mapping):
        raise ManifestError(
            f"{source}: expected a JSON object with keys dataset, source, classes"
        )
    for key in ("dataset", "source", "classes"):
        if key not in classes:
            raise ManifestError(f"{source}: missing key '{key}'")
    entries = classes["classes"]
    if not isinstance(entries, list) or not entries:
        raise ManifestError(f"{source}: 'classes' must be a non-empty list")
    names = set()
    for k, entry in enumerate(entries):
        where = f"{source}: classes[{k}]"
        if (
            not isinstance(entry, Mapping)
            or "name" not in entry
            or "imagenet" not in entry
        ):
            raise ManifestError(
                f"{where} must be an object with keys 'name' and 'imagenet'"
            )
        if entry["name"] in names:
            raise ManifestError(f"{where}: duplicate class name {entry['name']!r}")
        names.add(entry["name"])
        members = entry["imagenet"]
        # An empty list is allowed: a class with no ImageNet counterpart (YTBB-Robust's cow,
        # giraffe, skateboard, toilet, none) is never predicted but can still be a label.
        if not isinstance(members, list) or not all(
            isinstance(m, int) and not isinstance(m, bool) for m in members
        ):
            raise ManifestError(f"{where}.imagenet must be a list of integers")
        bad = [m for m in members if not 0 <= m < NUM_IMAGENET_CLASSES]
        if bad:
            raise ManifestError(
                f"{where}.imagenet: indices {bad} outside 0..{NUM_IMAGENET_CLASSES - 1} "
                "(ImageNet indices are positions in the sorted wnid list)"
            )


def class_members(classes: Mapping) -> list[list[int]]:
    """Member ImageNet indices of each dataset class, in dataset class order."""
    return [list(entry["imagenet"]) for entry in classes["classes"]]


def read_manifest(
    path: str | os.PathLike,
    *,
    check_files: bool = True,
    num_classes: int | None = None,
) -> pd.DataFrame:
    """Load ``manifest.csv`` as a DataFrame and validate it against the contract.

    ``image_id``, ``path`` and ``label`` are kept as strings (``label`` may be ``"i;j"``);
    use :func:`parse_labels` or :func:`label_matrix` for the indices. ``num_classes`` defaults
    to the number of classes in the ``classes.json`` beside the manifest, when there is one.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found (prepare the dataset first)")
    frame = pd.read_csv(
        path,
        dtype={column: str for column in REQUIRED_COLUMNS},
    )
    if num_classes is None and (path.parent / CLASSES_NAME).is_file():
        num_classes = len(read_classes(path.parent / CLASSES_NAME)["classes"])
    validate_manifest(
        frame,
        root=path.parent if check_files else None,
        num_classes=num_classes,
        source=str(path),
    )
    return frame


def validate_manifest(
    frame: pd.DataFrame,
    *,
    root: str | os.PathLike | None,
    num_classes: int | None,
    source: str = "manifest.csv",
) -> None:
    """Required columns, unique ids, well-formed labels in range, and (if ``root``) existing files."""
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ManifestError(
            f"{source}: missing required column(s) {missing}; found {list(frame.columns)} "
            f"(the manifest needs {list(REQUIRED_COLUMNS)})"
        )
    if frame.empty:
        raise ManifestError(f"{source}: the manifest has no rows")
    for column in REQUIRED_COLUMNS:
        empty = frame[column].isna() | (frame[column].astype(str).str.len() == 0)
        if empty.any():
            raise ManifestError(
                f"{source}: column '{column}' is empty in rows {_first(np.flatnonzero(empty))}"
            )
    duplicated = frame["image_id"].duplicated()
    if duplicated.any():
        raise ManifestError(
            f"{source}: column 'image_id' has duplicates, e.g. {_first(frame['image_id'][duplicated])}"
        )
    labels = frame["label"].astype(str)
    malformed = ~labels.str.fullmatch(LABEL_PATTERN)
    if malformed.any():
        raise ManifestError(
            f"{source}: column 'label' must hold an index or ';'-separated indices; "
            f"bad values {_first(labels[malformed])}"
        )
    if num_classes is not None:
        largest = _label_table(labels).max(axis=1)
        out_of_range = largest >= num_classes
        if out_of_range.any():
            raise ManifestError(
                f"{source}: column 'label' has indices >= {num_classes} (the number of classes in "
                f"{CLASSES_NAME}), e.g. {_first(labels[out_of_range])}"
            )
    if root is not None:
        root = Path(root)
        absent = missing_files(root, frame["path"])
        if absent:
            raise ManifestError(
                f"{source}: column 'path' names {len(absent)} file(s) that do not exist under {root}, "
                f"e.g. {absent[:3]} (paths are relative to the manifest's folder)"
            )


def missing_files(root: Path, paths: pd.Series) -> list[str]:
    """The entries of ``paths`` (relative to ``root``) that are not existing files.

    One directory walk plus a set lookup instead of a stat per row (ImageNet-C has millions of
    rows); only paths the walk did not see (``..``, ``./``, links to files) are stat'ed one by one.
    """
    listed = set()
    for folder, _, files in os.walk(root, followlinks=True):
        prefix = os.path.relpath(folder, root)
        prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"
        listed.update(prefix + name for name in files)
    paths = paths.astype(str)
    unseen = paths[~paths.isin(listed)]
    return [p for p in unseen if not os.path.isfile(root / p)]


def parse_labels(labels: pd.Series | Iterable[str]) -> list[list[int]]:
    """``["3", "1;4"]`` -> ``[[3], [1, 4]]``."""
    table = _label_table(pd.Series(labels, dtype=str))
    return [row[row >= 0].tolist() for row in table]


def label_matrix(labels: pd.Series | Iterable[str], num_classes: int) -> np.ndarray:
    """Boolean N x num_classes matrix: entry (i, k) is True when class k is a correct label of row i."""
    table = _label_table(pd.Series(labels, dtype=str))
    if table.size and table.max() >= num_classes:
        raise ManifestError(
            f"label index {table.max()} >= number of classes {num_classes}"
        )
    matrix = np.zeros((table.shape[0], num_classes), dtype=bool)
    rows, slots = np.nonzero(table >= 0)
    matrix[rows, table[rows, slots]] = True
    return matrix


def _label_table(labels: pd.Series) -> np.ndarray:
    """N x max-labels int array of label indices, padded with -1."""
    parts = labels.astype(str).str.split(";", expand=True)
    return (
        parts.apply(pd.to_numeric, errors="raise").fillna(-1).to_numpy(dtype=np.int64)
    )


def _first(values, count: int = 3) -> list:
    return list(values)[:count]


# ----------------------------------------------------------------------------- writing


def write_manifest(
    rows: pd.DataFrame | Iterable[Mapping],
    classes: Mapping,
    folder: str | os.PathLike,
    *,
    check_files: bool = True,
) -> pd.DataFrame:
    """Validate and write ``manifest.csv`` and ``classes.json`` into ``folder`` (not atomic on its own)."""
    folder = Path(folder)
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    validate_classes(classes, source=str(folder / CLASSES_NAME))
    if "label" in frame.columns:
        frame["label"] = frame["label"].astype(str)
    validate_manifest(
        frame,
        root=folder if check_files else None,
        num_classes=len(classes["classes"]),
        source=str(folder / MANIFEST_NAME),
    )
    ordered = list(REQUIRED_COLUMNS) + [
        c for c in frame.columns if c not in REQUIRED_COLUMNS
    ]
    frame[ordered].to_csv(folder / MANIFEST_NAME, index=False, lineterminator="\n")
    (folder / CLASSES_NAME).write_text(
        json.dumps(dict(classes), indent=1) + "\n", encoding="utf-8"
    )
    return frame[ordered]


@contextlib.contextmanager
def staged_dataset_dir(dest_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary sibling ``<dest>.tmp-XXXX`` to build a dataset in.

    On normal exit the folder must hold a valid manifest (checked, files included); ``.prepared``
    is written into it and it replaces ``dest_dir``. On an exception it is deleted and
    ``dest_dir`` is left as it was.
    """
    dest_dir = Path(dest_dir)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f"{dest_dir.name}.tmp-", dir=dest_dir.parent)
    )
    os.chmod(staging, 0o755)  # mkdtemp makes it 0700: unreadable for the group on a shared cluster
    try:
        yield staging
        _seal(staging)
        replace_dir(staging, dest_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_manifest_atomically(
    rows: pd.DataFrame | Iterable[Mapping],
    classes: Mapping,
    dest_dir: str | os.PathLike,
    *,
    staged_dir: str | os.PathLike | None = None,
) -> Path:
    """Write a complete prepared dataset folder at ``dest_dir`` in one rename.

    ``staged_dir``: a folder already holding the images (e.g. the one yielded by
    :func:`staged_dataset_dir`, or an extracted archive beside ``dest_dir``); the manifest is
    written into it and it becomes ``dest_dir``. Without it, a fresh temporary sibling gets only
    the manifest and classes; its paths must then point at files that exist relative to it
    (it sits beside ``dest_dir``, so ``../raw/x.jpg`` resolves the same from both).
    Like the temporary folder, a ``staged_dir`` is deleted when the manifest is refused.
    """
    dest_dir = Path(dest_dir)
    if staged_dir is not None:
        staged_dir = Path(staged_dir)
        try:
            write_manifest(rows, classes, staged_dir)
            _seal(staged_dir)
            replace_dir(staged_dir, dest_dir)
        except BaseException:
            shutil.rmtree(staged_dir, ignore_errors=True)
            raise
        return dest_dir
    with staged_dataset_dir(dest_dir) as staging:
        write_manifest(rows, classes, staging)
    return dest_dir


def _seal(folder: Path) -> None:
    """Validate the finished folder and write ``.prepared`` (last) with what it vouches for.

    No timestamp inside, so a rebuild with the same inputs gives a byte-identical folder.
    """
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise ManifestError(
            f"{folder}: no {MANIFEST_NAME} was written; the dataset build is incomplete"
        )
    frame = read_manifest(manifest, check_files=True)
    classes = read_classes(folder / CLASSES_NAME)
    stamp = {
        "dataset": classes["dataset"],
        "num_images": int(len(frame)),
        "num_classes": len(classes["classes"]),
        "manifest_sha256": manifest_digest(manifest),
    }
    (folder / PREPARED_NAME).write_text(
        json.dumps(stamp, indent=1) + "\n", encoding="utf-8"
    )


def replace_dir(new: Path, dest: Path) -> None:
    """Move ``new`` to ``dest``; an existing ``dest`` (e.g. the empty folder Snakemake creates for
    the ``.prepared`` output, or an older build) is moved aside first and deleted after.
    """
    if not dest.exists():
        os.replace(new, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{dest.name}.old-", dir=dest.parent))
    os.replace(dest, old / dest.name)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)
