"""The logits contract (docs/contracts.md §2): write atomically, read with checks."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import h5py
import numpy as np

from oodbench.atomic import replacing

LOGIT_DTYPES = {"float16": np.float16, "float32": np.float32}


def package_versions() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "timm", "h5py", "numpy", "oodbench"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def write_logits(out_path: Path, logits: np.ndarray, image_ids: list[str], attrs: dict) -> None:
    """Written beside and renamed: a killed job leaves nothing that looks complete."""
    with replacing(out_path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w", track_order=True) as h5:
            h5.create_dataset("logits", data=logits, track_times=False)
            h5.create_dataset("image_id", data=np.array(image_ids, dtype=object), dtype=h5py.string_dtype(), track_times=False)
            for key, value in attrs.items():
                h5.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value


def read_attrs(path: Path) -> dict:
    with h5py.File(path, "r") as h5:
        return {k: _decode(v) for k, v in h5.attrs.items()}


def read_logits(path: Path, manifest_digest: str | None = None, expected_rows: int | None = None) -> tuple[np.ndarray, dict]:
    """Logits as float32 plus attributes; refuses logits computed from another manifest."""
    with h5py.File(path, "r") as h5:
        if "logits" not in h5:
            raise ValueError(f"{path}: no 'logits' dataset; delete it and rerun its predict job")
        logits = h5["logits"][...].astype(np.float32)
        attrs = {k: _decode(v) for k, v in h5.attrs.items()}
    if manifest_digest is not None and attrs.get("manifest_digest") != manifest_digest:
        raise ValueError(
            f"{path} was computed from a different manifest (digest {attrs.get('manifest_digest')!r}, "
            f"current {manifest_digest!r}); rerun its predict job (snakemake -R predict)"
        )
    if expected_rows is not None and logits.shape[0] != expected_rows:
        raise ValueError(f"{path}: {logits.shape[0]} rows of logits, manifest has {expected_rows}")
    return logits, attrs


def _decode(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value
