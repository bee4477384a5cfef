"""Writers that never leave a partial file looking complete: write beside, then rename.

Every stage's tables, JSON summaries and figures go through these, so a killed job leaves at
most a hidden `.<name>.*` temporary, never a truncated output that Snakemake would trust.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; outputs get the mode a plain open() would give them, so that
# collaborators on a shared cluster can read results/.
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def replacing(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; it becomes `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    os.chmod(tmp, _FILE_MODE)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(frame, path: str | os.PathLike, index: bool = False) -> None:
    with replacing(path) as tmp:
        frame.to_csv(tmp, index=index, lineterminator="\n")


def write_json(obj: Mapping, path: str | os.PathLike) -> None:
    """numpy scalars become Python numbers and NaN/inf become null, so summaries stay strict JSON."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(_plain(obj), indent=1, sort_keys=True, allow_nan=False) + "\n")


def _plain(obj):
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def save_figure(figure, pdf_path: str | os.PathLike, png_path: str | os.PathLike, dpi: int = 150) -> None:
    """Both formats, tight bounding box, no creation date in the PDF (same table, same bytes);
    closes the figure."""
    import matplotlib.pyplot as plt

    for path, fmt in ((pdf_path, "pdf"), (png_path, "png")):
        metadata = {"CreationDate": None} if fmt == "pdf" else {}
        with replacing(path, suffix=f".{fmt}") as tmp:
            figure.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
    plt.close(figure)
