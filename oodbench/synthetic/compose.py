"""Deterministic, sharded composition of a factor-of-variation dataset.

Inputs are two prepared tables (see ``sources.py``): ``objects.csv`` (one RGBA cut-out per row:
``object_id, class_name, imagenet, path``) and ``backgrounds.csv`` (``background_id, path``),
paths relative to the table's folder.

* ``compose_shard`` renders the objects ``sorted(object_ids)[shard::num_shards]`` -- every
  (object, background, grid cell) whose visible fraction passes the factor's filter -- into
  ``<shard_dir>/images/<object_id>/<image_id>.<ext>`` and writes ``<shard_dir>/part.csv``.
  The shard folder is built under a temporary sibling name and renamed into place.
* ``merge_shards`` hard-links every shard's images into one staged dataset folder, writes
  ``manifest.csv`` + ``classes.json`` (contract §1) and ``.prepared`` last, and renames it into
  place. Rows are sorted by (object, background slot, grid index), so the manifest and the image
  paths do not depend on the number of shards.

Same inputs and config -> byte-identical images and manifest (fixed seeds, fixed encoder
settings, no timestamps in files).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from oodbench.datasets import manifest as manifest_io
from oodbench.synthetic import geometry
from oodbench.synthetic.grid import FactorSpec, expected_count, factor_grid, factor_specs, sample_backgrounds

PART_NAME = "part.csv"
OBJECT_COLUMNS = ("object_id", "class_name", "imagenet", "path")
BACKGROUND_COLUMNS = ("background_id", "path")
MANIFEST_EXTRA = ("factor", "object_id", "background_id", "area", "x", "y", "angle", "visible_fraction")
IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG"}


class ComposeError(ValueError):
    """Bad composition input (tables, config, shard folders); the message names the file or key."""


# ----------------------------------------------------------------------------- inputs


def read_table(path: str | os.PathLike, required: Sequence[str], what: str) -> pd.DataFrame:
    """A prepared objects/backgrounds table with its required columns and unique ids."""
    path = Path(path)
    if not path.is_file():
        raise ComposeError(f"{path}: {what} table not found (run the synthetic source preparation first)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ComposeError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    key = required[0]
    duplicated = table[key][table[key].duplicated()]
    if len(duplicated):
        raise ComposeError(f"{path}: duplicate {key} values, e.g. {list(duplicated[:3])}")
    if table.empty:
        raise ComposeError(f"{path}: the {what} table has no rows")
    return table


def read_objects(path: str | os.PathLike) -> pd.DataFrame:
    return read_table(path, OBJECT_COLUMNS, "objects")


def read_backgrounds(path: str | os.PathLike) -> pd.DataFrame:
    return read_table(path, BACKGROUND_COLUMNS, "backgrounds")


def canvas_size(synthetic: Mapping) -> tuple[int, int]:
    canvas = synthetic.get("canvas")
    if (
        not isinstance(canvas, Sequence)
        or len(canvas) != 2
        or not all(isinstance(v, int) and v > 0 for v in canvas)
    ):
        raise ComposeError(f"synthetic.canvas: expected [width, height] in pixels, got {canvas!r}")
    return int(canvas[0]), int(canvas[1])


def fit_background(image: Image.Image, size: tuple[int, int], source: str) -> Image.Image:
    """Centre-crop to the canvas aspect ratio, then resize (antialiased) to the canvas."""
    if image.mode != "RGB":
        raise ComposeError(f"{source}: background must be RGB, got mode {image.mode!r}")
    width, height = size
    if image.width < width or image.height < height:
        raise ComposeError(f"{source}: background is {image.size}, smaller than the canvas {size}")
    crop_w = min(image.width, round(image.height * width / height))
    crop_h = min(image.height, round(image.width * height / width))
    left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
    cropped = image.crop((left, top, left + crop_w, top + crop_h))
    return cropped if cropped.size == size else cropped.resize(size, Image.Resampling.LANCZOS)


def classes_document(objects: pd.DataFrame, dataset: str, source: str) -> dict:
    """classes.json: every class of the prepared objects, sorted by name."""
    per_class = objects.groupby("class_name")["imagenet"].unique()
    conflicting = per_class[per_class.map(len) > 1]
    if len(conflicting):
        raise ComposeError(
            f"objects table: class {conflicting.index[0]!r} has different ImageNet index sets "
            f"{list(conflicting.iloc[0])}; one class must map to one set"
        )
    classes = [
        {"name": name, "imagenet": sorted(int(v) for v in str(members[0]).split(";"))}
        for name, members in per_class.sort_index().items()
    ]
    return {"dataset": dataset, "source": source, "classes": classes}


# ----------------------------------------------------------------------------- shards


def shard_object_ids(object_ids: Sequence[str], shard: int, num_shards: int) -> list[str]:
    if not 0 <= shard < num_shards:
        raise ComposeError(f"shard {shard} is outside 0..{num_shards - 1}")
    return sorted(object_ids)[shard::num_shards]


def image_id(object_id: str, slot: int, grid_index: int) -> str:
    return f"{object_id}-bg{slot}-{grid_index:05d}"


def encode_image(image: Image.Image, image_format: str, jpeg_quality: int) -> bytes:
    buffer = io.BytesIO()
    if image_format == "jpg":
        image.save(buffer, "JPEG", quality=int(jpeg_quality), optimize=False)
    else:
        image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def compose_shard(
    factor: str,
    shard: int,
    num_shards: int,
    objects_csv: str | os.PathLike,
    backgrounds_csv: str | os.PathLike,
    synthetic: Mapping,
    shard_dir: str | os.PathLike,
    progress: bool = True,
) -> pd.DataFrame:
    """Render one shard of ``factor`` into ``shard_dir`` (atomically); returns its part table."""
    spec = _spec(synthetic, factor)
    size = canvas_size(synthetic)
    image_format = synthetic.get("image_format", "jpg")
    if image_format not in IMAGE_FORMATS:
        raise ComposeError(f"synthetic.image_format: expected one of {list(IMAGE_FORMATS)}, got {image_format!r}")
    quality = int(synthetic.get("jpeg_quality", 95))
    area_basis = synthetic.get("area_basis", "mask")
    objects_csv, backgrounds_csv = Path(objects_csv), Path(backgrounds_csv)
    objects = read_objects(objects_csv).set_index("object_id")
    backgrounds = read_backgrounds(backgrounds_csv).set_index("background_id")
    pairs = sample_backgrounds(
        objects.index.tolist(),
        backgrounds.index.tolist(),
        int(synthetic.get("backgrounds_per_object", 2)),
        int(synthetic.get("seed", 0)),
    )
    mine = shard_object_ids(objects.index.tolist(), shard, num_shards)
    grid = factor_grid(spec)
    load_background = _background_loader(backgrounds_csv.parent, tuple(backgrounds["path"].items()), size)

    shard_dir = Path(shard_dir)
    shard_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{shard_dir.name}.tmp-", dir=shard_dir.parent))
    try:
        rows = []
        bar = tqdm(total=len(mine) * len(grid), desc=f"{factor} shard {shard}", disable=not progress, file=sys.stderr)
        for object_id in mine:
            record = objects.loc[object_id]
            cutout = _load_cutout(objects_csv.parent / record["path"])
            object_pairs = pairs[pairs["object_id"] == object_id]
            out_folder = staging / "images" / object_id
            out_folder.mkdir(parents=True)
            rows.extend(
                _render_object(
                    object_id, record["class_name"], cutout, object_pairs, grid, spec, size, area_basis,
                    load_background, image_format, quality, out_folder, factor,
                )
            )
            bar.update(len(grid))
        bar.close()
        part = pd.DataFrame(rows, columns=_part_columns())
        part.to_csv(staging / PART_NAME, index=False, lineterminator="\n")
        manifest_io.replace_dir(staging, shard_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return part


def _render_object(
    object_id, class_name, cutout, object_pairs, grid, spec, size, area_basis,
    load_background, image_format, quality, out_folder, factor,
) -> list[tuple]:
    """All kept images of one object; the transformed object is shared by its backgrounds."""
    rows = []
    resized_by_area: dict[float, tuple[Image.Image, tuple[float, float]]] = {}
    for cell in grid.itertuples(index=False):
        if cell.area not in resized_by_area:
            scale = geometry.scale_for_area(cutout, size, cell.area, area_basis)
            resized_by_area[cell.area] = (
                geometry.resize_for_scale(cutout, scale),
                (cutout.width * scale, cutout.height * scale),
            )
        resized, target = resized_by_area[cell.area]
        placed = geometry.place(resized, target, geometry.Placement(cell.area, cell.x, cell.y, cell.angle), size)
        visible = round(placed.visible_fraction, 6)
        if visible < spec.min_visible:
            continue
        for pair in object_pairs.itertuples(index=False):
            name = image_id(object_id, pair.background_slot, cell.grid_index)
            relative = f"images/{object_id}/{name}.{image_format}"
            image = geometry.composite(load_background(pair.background_id), placed)
            (out_folder / f"{name}.{image_format}").write_bytes(encode_image(image, image_format, quality))
            rows.append(
                (name, relative, class_name, factor, object_id, pair.background_id, pair.background_slot,
                 cell.grid_index, cell.area, cell.x, cell.y, cell.angle, visible)
            )
    return rows


def _part_columns() -> list[str]:
    return [
        "image_id", "path", "class_name", "factor", "object_id", "background_id", "background_slot",
        "grid_index", "area", "x", "y", "angle", "visible_fraction",
    ]


def _spec(synthetic: Mapping, factor: str) -> FactorSpec:
    specs = factor_specs(synthetic, grid_only=True)
    if factor not in specs:
        raise ComposeError(f"synthetic.factors has no factor {factor!r}; configured: {list(specs)}")
    return specs[factor]


def _load_cutout(path: Path) -> Image.Image:
    if not path.is_file():
        raise ComposeError(f"{path}: cut-out listed in the objects table does not exist")
    with Image.open(path) as image:
        image.load()
        return geometry.crop_to_alpha(image, source=str(path))


def _background_loader(root: Path, paths: tuple, size: tuple[int, int]):
    lookup = dict(paths)

    @lru_cache(maxsize=64)
    def load(background_id: str) -> Image.Image:
        path = root / lookup[background_id]
        with Image.open(path) as image:
            image.load()
            return fit_background(image, size, str(path))

    return load


# ----------------------------------------------------------------------------- merge


def merge_shards(
    factor: str,
    shard_dirs: Sequence[str | os.PathLike],
    objects: pd.DataFrame,
    dest_dir: str | os.PathLike,
    dataset: str | None = None,
    source: str = "oodbench synthetic factor-of-variation generator",
) -> pd.DataFrame:
    """One prepared dataset folder (manifest, classes, images, ``.prepared``) from all shards;
    ``objects`` is the objects table the shards were composed from (``read_objects``)."""
    dataset = dataset or Path(dest_dir).name
    classes = classes_document(objects, dataset, source)
    label_of = {entry["name"]: k for k, entry in enumerate(classes["classes"])}
    parts = [_read_part(Path(d)) for d in shard_dirs]
    table = pd.concat(parts, ignore_index=True)
    wrong = table[table["factor"] != factor]
    if len(wrong):
        raise ComposeError(f"shard parts hold factor {wrong['factor'].iloc[0]!r}, expected {factor!r}")
    missing_objects = sorted(set(objects["object_id"]) - set(table["object_id"]))
    table = table.sort_values(["object_id", "background_slot", "grid_index"], kind="mergesort")
    table["label"] = table["class_name"].map(label_of).astype(int)
    rows = table[["image_id", "path", "label", *MANIFEST_EXTRA]].reset_index(drop=True)
    with manifest_io.staged_dataset_dir(dest_dir) as staging:
        for shard_dir in shard_dirs:
            _link_tree(Path(shard_dir) / "images", staging / "images")
        manifest_io.write_manifest(rows, classes, staging)
    if missing_objects:
        print(
            f"note: {len(missing_objects)} object(s) have no image passing the visible-fraction filter "
            f"of factor {factor!r}, e.g. {missing_objects[:3]}",
            file=sys.stderr,
        )
    return rows


def _read_part(shard_dir: Path) -> pd.DataFrame:
    part = shard_dir / PART_NAME
    if not part.is_file():
        raise ComposeError(f"{shard_dir}: no {PART_NAME}; the shard is incomplete (re-run its compose job)")
    return pd.read_csv(part, dtype={"image_id": str, "path": str, "object_id": str, "background_id": str, "class_name": str})


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link (copy across file systems) every file of ``source`` into ``target``."""
    if not source.is_dir():
        return
    for folder, _, files in os.walk(source):
        destination = target / Path(folder).relative_to(source)
        destination.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(folder) / name, destination / name)
            except OSError:
                shutil.copy2(Path(folder) / name, destination / name)


def summarise_counts(rows: pd.DataFrame, spec: FactorSpec, num_objects: int, per_object: int) -> dict:
    grid_total = expected_count(spec, num_objects, per_object)
    return {
        "factor": spec.name,
        "grid_size": spec.grid_size,
        "before_filter": grid_total,
        "kept": int(len(rows)),
        "kept_fraction": float(len(rows) / grid_total) if grid_total else float("nan"),
        "mean_visible_fraction": float(np.mean(rows["visible_fraction"])) if len(rows) else float("nan"),
    }
