"""Foreground objects and backgrounds for the synthetic set, prepared into two tables.

``objects.csv`` (beside the cut-outs): ``object_id, class_name, imagenet, path, source,
source_image_id, source_split, label_mid, box_id, predicted_iou, width, height, mask_pixels``
-- one RGBA PNG per object, cropped to its alpha. ``backgrounds.csv``: ``background_id, path,
width, height``. Paths are relative to the table's folder.

Three object sources:

* **OpenImages** (the paper): segmentation CSV + mask zips + box annotations + images of the
  classes in a class map (OpenImages class name -> ImageNet index set). Objects whose box is
  flagged ``IsOccluded``, ``IsTruncated``, ``IsGroupOf`` or ``IsDepiction`` are dropped (the
  paper names occluded and truncated; group boxes hold several objects and depictions are
  drawings, neither is a single real object to paste). A mask is matched to its box by image,
  class and box coordinates. ``exclude`` lists object ids removed by manual review (the paper
  removed "highly incomplete or inaccurately labeled objects" by hand).
* **A folder of RGBA cut-outs** laid out ``<folder>/<class_name>/<file>.png`` (the released
  SI-Score foreground layout) plus a class map CSV.
* **The demo** (``demo_sources.py``).

Backgrounds come from a folder of photos; every file must open as an RGB image at least as large
as the canvas. An invalid file is an error naming it -- nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from oodbench.atomic import replacing, write_csv
from oodbench.synthetic.geometry import crop_to_alpha

OBJECTS_NAME = "objects.csv"
BACKGROUNDS_NAME = "backgrounds.csv"
OBJECT_TABLE_COLUMNS = (
    "object_id", "class_name", "imagenet", "path", "source", "source_image_id", "source_split",
    "label_mid", "box_id", "predicted_iou", "width", "height", "mask_pixels",
)
DROP_FLAGS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction")
BOX_MATCH_TOLERANCE = 0.01
DEFAULT_CLASS_MAP = Path(__file__).parent / "data" / "openimages_to_imagenet.csv"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
# A downloader: (url, destination, sha256 or None) -> destination. The pipeline passes
# oodbench.datasets.download.download (resumable, checksum-verified, atomic).
Fetch = Callable[[str, Path, "str | None"], Path]


class SourceError(ValueError):
    """Invalid source data (class map, cut-out, background, annotation); names the file and fix."""


# ----------------------------------------------------------------------------- class maps


def read_class_map(path: str | os.PathLike) -> dict[str, list[int]]:
    """``class_name,imagenet`` CSV (``#`` comments allowed) -> {lower-cased name: [indices]}."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: class map not found")
    table = pd.read_csv(path, dtype=str, comment="#", keep_default_na=False)
    if list(table.columns[:2]) != ["class_name", "imagenet"]:
        raise SourceError(f"{path}: expected columns class_name,imagenet; found {list(table.columns)}")
    mapping: dict[str, list[int]] = {}
    for row in table.itertuples(index=False):
        name = row.class_name.strip().lower()
        try:
            indices = sorted(int(v) for v in str(row.imagenet).split(";"))
        except ValueError as error:
            raise SourceError(f"{path}: class {name!r}: imagenet must be ';'-separated integers") from error
        if not indices or any(not 0 <= i < 1000 for i in indices):
            raise SourceError(f"{path}: class {name!r}: ImageNet indices must lie in 0..999, got {indices}")
        if name in mapping:
            raise SourceError(f"{path}: class {name!r} is listed twice")
        mapping[name] = indices
    return mapping


def imagenet_field(indices: Sequence[int]) -> str:
    return ";".join(str(int(i)) for i in sorted(indices))


def safe_id(text: str) -> str:
    """File-system and CSV friendly identifier."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


# ----------------------------------------------------------------------------- writing tables


def save_png(cutout: Image.Image, path: Path) -> None:
    with replacing(path, suffix=".png") as tmp:
        cutout.save(tmp, "PNG", compress_level=6)


def object_row(object_id: str, class_name: str, imagenet: Sequence[int], path: str, cutout: Image.Image, **extra) -> dict:
    alpha = np.asarray(cutout.getchannel("A"))
    row = {column: "" for column in OBJECT_TABLE_COLUMNS}
    row.update(
        object_id=object_id,
        class_name=class_name,
        imagenet=imagenet_field(imagenet),
        path=path,
        width=cutout.width,
        height=cutout.height,
        mask_pixels=int((alpha > 127).sum()),
    )
    row.update(extra)
    return row


def finish_objects(rows: list[dict], objects_dir: Path) -> pd.DataFrame:
    if not rows:
        raise SourceError(f"{objects_dir}: no objects were prepared (check the sources and filters)")
    table = pd.DataFrame(rows, columns=list(OBJECT_TABLE_COLUMNS)).sort_values("object_id", kind="mergesort")
    write_csv(table, objects_dir / OBJECTS_NAME)
    return table


# ----------------------------------------------------------------------------- folder sources


def prepare_cutout_folder(folder: str | os.PathLike, class_map_csv: str | os.PathLike, objects_dir: str | os.PathLike) -> pd.DataFrame:
    """User cut-outs ``<folder>/<class_name>/<file>.png`` (RGBA) -> ``objects_dir/objects.csv``."""
    folder, objects_dir = Path(folder), Path(objects_dir)
    class_map = read_class_map(class_map_csv)
    if not folder.is_dir():
        raise SourceError(f"{folder}: cut-out folder not found (layout: <folder>/<class_name>/<file>.png)")
    rows = []
    for class_dir in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if not class_dir.is_dir():
            raise SourceError(f"{class_dir}: expected only class folders in {folder} (layout <class_name>/<file>.png)")
        name = class_dir.name.lower()
        if name not in class_map:
            raise SourceError(f"{class_dir}: class {name!r} is not in the class map {class_map_csv}; add it with its ImageNet indices")
        for file in sorted(p for p in class_dir.iterdir() if not p.name.startswith(".")):
            cutout = _open_cutout(file)
            object_id = safe_id(f"{name}-{file.stem}")
            relative = f"cutouts/{object_id}.png"
            save_png(cutout, objects_dir / relative)
            rows.append(object_row(object_id, name, class_map[name], relative, cutout, source=f"folder:{file}"))
    return finish_objects(rows, objects_dir)


def _open_cutout(file: Path) -> Image.Image:
    try:
        with Image.open(file) as image:
            image.load()
            if image.mode != "RGBA":
                raise SourceError(f"{file}: cut-outs must be RGBA PNGs (the alpha is the mask), got mode {image.mode!r}")
            return crop_to_alpha(image, source=str(file))
    except (UnidentifiedImageError, OSError) as error:
        raise SourceError(f"{file}: not a readable image ({error})") from error


def validate_background(file: Path, canvas: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of a valid background, or SourceError naming the file and the problem."""
    try:
        with Image.open(file) as image:
            image.load()
            mode, size = image.mode, image.size
    except (UnidentifiedImageError, OSError) as error:
        raise SourceError(f"{file}: not a readable image ({error}); remove it from the backgrounds folder") from error
    if mode != "RGB":
        raise SourceError(f"{file}: background must be an RGB photo, got mode {mode!r}; convert it (e.g. PIL .convert('RGB')) or remove it")
    if size[0] < canvas[0] or size[1] < canvas[1]:
        raise SourceError(f"{file}: background is {size[0]}x{size[1]}, smaller than the canvas {canvas[0]}x{canvas[1]}; use a larger photo or a smaller synthetic.canvas")
    return size


def prepare_backgrounds(folder: str | os.PathLike, canvas: tuple[int, int], table_path: str | os.PathLike) -> pd.DataFrame:
    """Validate every file of ``folder`` and write ``backgrounds.csv`` (paths relative to it)."""
    folder, table_path = Path(folder), Path(table_path)
    if not folder.is_dir():
        raise SourceError(f"{folder}: backgrounds folder not found (set synthetic.backgrounds.folder)")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        raise SourceError(f"{folder}: the backgrounds folder is empty")
    rows = []
    for file in files:
        if file.is_dir() or file.suffix.lower() not in IMAGE_SUFFIXES:
            raise SourceError(f"{file}: not an image file (allowed: {sorted(IMAGE_SUFFIXES)}); the backgrounds folder must hold only photos")
        width, height = validate_background(file, canvas)
        rows.append({"background_id": safe_id(file.stem), "path": os.path.relpath(file, table_path.parent), "width": width, "height": height})
    table = pd.DataFrame(rows)
    duplicated = table["background_id"][table["background_id"].duplicated()]
    if len(duplicated):
        raise SourceError(f"{folder}: several files share the name stem {duplicated.iloc[0]!r}; rename them")
    write_csv(table, table_path)
    return table


# ----------------------------------------------------------------------------- OpenImages


def openimages_metadata_files(openimages: Mapping) -> dict[str, str]:
    """{relative destination: url} of the annotation files (URLs are config data)."""
    urls = openimages["urls"]
    files = {"class-descriptions-boxable.csv": urls["class_descriptions"]}
    for split in openimages["splits"]:
        files[f"{split}-annotations-object-segmentation.csv"] = urls["segmentation"].format(split=split)
        boxes = urls["boxes"]
        if split not in boxes:
            raise SourceError(f"synthetic.objects.openimages.urls.boxes: no URL for split {split!r}")
        files[f"{split}-annotations-bbox.csv"] = boxes[split]
    return files


def fetch_files(files: Mapping[str, str], folder: Path, fetch: Fetch, checksums: Mapping[str, str] | None = None) -> list[Path]:
    """Download each url to ``folder/<name>`` (skipping ones already complete)."""
    checksums = checksums or {}
    paths = []
    for name, url in files.items():
        dest = folder / name
        if not dest.is_file():
            fetch(url, dest, checksums.get(url))
        paths.append(dest)
    return paths


def select_openimages_objects(
    class_descriptions_csv: Path,
    segmentation_csvs: Mapping[str, Path],
    bbox_csvs: Mapping[str, Path],
    class_map: Mapping[str, list[int]],
    min_predicted_iou: float = 0.0,
    max_per_class: int | None = None,
    exclude: Sequence[str] = (),
    drop_flags: Sequence[str] = DROP_FLAGS,
) -> pd.DataFrame:
    """Masks of mapped classes whose matching box carries none of ``drop_flags``.

    Returns one row per object: ``object_id`` (mask file stem), ``split``, ``MaskPath``,
    ``ImageID``, ``LabelName``, ``BoxID``, ``class_name``, ``PredictedIoU``. Deterministic:
    per class, the highest PredictedIoU first, ties by object id.
    """
    descriptions = pd.read_csv(class_descriptions_csv, header=None, names=["LabelName", "name"], dtype=str)
    descriptions["class_name"] = descriptions["name"].str.strip().str.lower()
    wanted = descriptions[descriptions["class_name"].isin(class_map)]
    unknown = sorted(set(class_map) - set(wanted["class_name"]))
    if unknown:
        print(f"note: class-map classes not among OpenImages boxable classes: {unknown}", file=sys.stderr)
    selected = []
    for split, seg_path in segmentation_csvs.items():
        masks = pd.read_csv(seg_path, dtype={"ImageID": str, "BoxID": str, "MaskPath": str, "LabelName": str})
        masks = masks.merge(wanted[["LabelName", "class_name"]], on="LabelName")
        boxes = pd.read_csv(
            bbox_csvs[split],
            usecols=["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", *drop_flags],
            dtype={"ImageID": str, "LabelName": str},
        )
        boxes = boxes[boxes["LabelName"].isin(wanted["LabelName"])]
        matched = match_masks_to_boxes(masks, boxes)
        keep = (matched[list(drop_flags)] == 0).all(axis=1) & (matched["PredictedIoU"] >= min_predicted_iou)
        kept = matched[keep].assign(split=split)
        selected.append(kept)
    table = pd.concat(selected, ignore_index=True) if selected else pd.DataFrame()
    if table.empty:
        raise SourceError("OpenImages: no mask passed the class map and flag filters")
    table["object_id"] = table["MaskPath"].str.replace(r"\.png$", "", regex=True).map(safe_id)
    table = table[~table["object_id"].isin(set(exclude))]
    table = table.sort_values(["class_name", "PredictedIoU", "object_id"], ascending=[True, False, True], kind="mergesort")
    if max_per_class:
        table = table.groupby("class_name", sort=False).head(int(max_per_class))
    columns = ["object_id", "split", "MaskPath", "ImageID", "LabelName", "BoxID", "class_name", "PredictedIoU"]
    return table[columns].sort_values("object_id", kind="mergesort").reset_index(drop=True)


def match_masks_to_boxes(masks: pd.DataFrame, boxes: pd.DataFrame, tolerance: float = BOX_MATCH_TOLERANCE) -> pd.DataFrame:
    """Each mask joined to the box of the same image and class with the nearest coordinates.

    The segmentation CSV has ``BoxXMin..BoxYMax`` but no key into the box CSV; masks with no box
    within ``tolerance`` (max coordinate difference, normalised units) are dropped -- their flags
    are unknown.
    """
    joined = masks.merge(boxes, on=["ImageID", "LabelName"], how="inner")
    distance = np.max(
        np.abs(
            joined[["BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"]].to_numpy(float)
            - joined[["XMin", "XMax", "YMin", "YMax"]].to_numpy(float)
        ),
        axis=1,
    )
    joined = joined.assign(box_distance=distance)
    joined = joined[joined["box_distance"] <= tolerance]
    best = joined.sort_values(["MaskPath", "box_distance"], kind="mergesort").drop_duplicates("MaskPath")
    return best.reset_index(drop=True)


def mask_zip_name(split: str, image_id: str) -> str:
    """OpenImages ships masks in 16 zips per split keyed by the image id's first hex digit."""
    return f"{split}-masks-{image_id[0].lower()}.zip"


def fetch_openimages_assets(selection: pd.DataFrame, openimages: Mapping, raw_dir: Path, fetch: Fetch) -> None:
    """Download the mask zips and images the selection needs into ``raw_dir`` (resumable)."""
    urls = openimages["urls"]
    checksums = openimages.get("checksums", {}) or {}
    zips = sorted({(row.split, mask_zip_name(row.split, row.ImageID)) for row in selection.itertuples()})
    for split, name in zips:
        shard = name.rsplit("-", 1)[1].split(".")[0]
        url = urls["masks"].format(split=split, shard=shard)
        dest = raw_dir / "masks" / name
        if not dest.is_file():
            fetch(url, dest, checksums.get(url))
    for split, image_id in sorted(set(zip(selection["split"], selection["ImageID"]))):
        dest = raw_dir / "images" / split / f"{image_id}.jpg"
        if not dest.is_file():
            fetch(urls["image"].format(split=split, image_id=image_id), dest, None)


def make_cutout(image: Image.Image, mask: Image.Image, source: str) -> Image.Image:
    """RGBA cut-out: the image with the (binary) mask as alpha, cropped to the mask."""
    rgb = image.convert("RGB")
    mask = mask.convert("L")
    if mask.size != rgb.size:
        aspect_image, aspect_mask = rgb.width / rgb.height, mask.width / mask.height
        if abs(aspect_image / aspect_mask - 1.0) > 0.02:
            raise SourceError(f"{source}: mask is {mask.size}, image is {rgb.size} (different aspect ratios)")
        mask = mask.resize(rgb.size, Image.Resampling.BILINEAR)
    alpha = np.where(np.asarray(mask) > 127, 255, 0).astype(np.uint8)
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(alpha, "L"))
    return crop_to_alpha(rgba, source=source)


def prepare_openimages_objects(
    selection: pd.DataFrame, class_map: Mapping[str, list[int]], raw_dir: Path, objects_dir: Path, min_mask_pixels: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut out every selected object; returns (objects table, rejected rows with reasons)."""
    rows, rejected = [], []
    archives: dict[str, zipfile.ZipFile] = {}
    try:
        for row in selection.itertuples(index=False):
            name = mask_zip_name(row.split, row.ImageID)
            if name not in archives:
                archives[name] = zipfile.ZipFile(raw_dir / "masks" / name)
            image_path = raw_dir / "images" / row.split / f"{row.ImageID}.jpg"
            try:
                with archives[name].open(row.MaskPath) as handle, Image.open(handle) as mask, Image.open(image_path) as image:
                    cutout = make_cutout(image, mask, f"{image_path} + {row.MaskPath}")
            except (KeyError, SourceError, OSError) as error:
                rejected.append({"object_id": row.object_id, "reason": str(error)})
                continue
            if int((np.asarray(cutout.getchannel("A")) > 127).sum()) < min_mask_pixels:
                rejected.append({"object_id": row.object_id, "reason": f"mask smaller than {min_mask_pixels} pixels"})
                continue
            relative = f"cutouts/{row.object_id}.png"
            save_png(cutout, objects_dir / relative)
            rows.append(
                object_row(
                    row.object_id, row.class_name, class_map[row.class_name], relative, cutout,
                    source="openimages", source_image_id=row.ImageID, source_split=row.split,
                    label_mid=row.LabelName, box_id=row.BoxID, predicted_iou=row.PredictedIoU,
                )
            )
    finally:
        for archive in archives.values():
            archive.close()
    rejected_table = pd.DataFrame(rejected, columns=["object_id", "reason"])
    write_csv(rejected_table, objects_dir / "rejected.csv")
    return finish_objects(rows, objects_dir), rejected_table


def default_fetch() -> Fetch:
    """The project's resumable, checksum-verified, atomic downloader."""
    from oodbench.datasets.download import download

    def fetch(url: str, dest: Path, sha256: str | None) -> Path:
        return download(url, dest, sha256=sha256)

    return fetch


def reset_folder(folder: Path) -> None:
    """Empty ``folder`` (a re-run replaces the previous cut-outs)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
