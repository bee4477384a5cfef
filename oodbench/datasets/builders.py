"""Dispatch from a config ``kind`` to the preparer that builds ``data/<dataset>/``.

Each preparer is ``prepare(dest, options, archives)``: ``dest`` the dataset folder, ``options`` the
dataset's config block, ``archives`` the downloaded files the rule passes in (may be empty for
datasets the user places by hand). All of them write manifest.csv + classes.json and ``.prepared``
last, through :mod:`oodbench.datasets.manifest`.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from oodbench.datasets.download import download

log = logging.getLogger(__name__)

# kind -> "module:function" (imported lazily: torch/PIL only load for the kinds that need them)
PREPARERS = {
    "imagenet": "oodbench.datasets.imagenet:prepare",
    "imagenet_v2": "oodbench.datasets.imagenet_v2:prepare",
    "imagenet_a": "oodbench.datasets.imagenet_a:prepare",
    "imagenet_c": "oodbench.datasets.imagenet_c:prepare",
    "imagenet_c_generated": "oodbench.datasets.imagenet_c:prepare_generated",
    "objectnet": "oodbench.datasets.objectnet:prepare",
    "imagenet_vid_robust": "oodbench.datasets.imagenet_vid_robust:prepare",
    "ytbb_robust": "oodbench.datasets.ytbb_robust:prepare",
}


def preparer(kind: str):
    if kind not in PREPARERS:
        raise ValueError(
            f"dataset kind {kind!r} has no preparer; known kinds: {sorted(PREPARERS)}"
        )
    module, function = PREPARERS[kind].split(":")
    return getattr(importlib.import_module(module), function)


def prepare_dataset(name: str, options: dict, dest: str | Path, archives=()) -> Path:
    """Build ``dest`` for the config entry ``name`` (its ``kind`` picks the preparer)."""
    options = {"name": name, **(options or {})}
    kind = options.get("kind", name)
    log.info("preparing %s (kind %s) into %s", name, kind, dest)
    return preparer(kind)(Path(dest), options, [Path(a) for a in archives])


def download_dataset_file(source: dict, dest: str | Path) -> Path:
    """Download one archive described by ``{url, sha256 | md5}`` (a dataset's config or one of its parts)."""
    if not source.get("url"):
        raise ValueError(
            f"no 'url' configured for {dest}; set it in the dataset's config block"
        )
    return download(
        source["url"],
        dest,
        sha256=source.get("sha256"),
        md5=source.get("md5"),
        retries=int(source.get("retries", 3)),
    )
