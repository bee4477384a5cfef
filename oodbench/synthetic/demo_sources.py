"""The demo's stand-in objects and backgrounds, built offline from images installed packages ship.

Objects: the six demo photos (``oodbench.datasets.demo``: chelsea, coffee, rocket, camera,
stereo_motorcycle, grace_hopper -- each already cut to the box its superclass fills), each with a
soft elliptical mask inscribed in that box (full opacity inside 80 % of the radius, a raised-
cosine fall-off to zero at the ellipse), labelled by the same superclass -> ImageNet index sets as
the other demo datasets.

Backgrounds: scikit-image's grass, gravel and brick textures (grey, tinted to plausible colours)
and two generated plain backgrounds (a sky gradient and a sand colour with mild seeded noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from oodbench.synthetic.sources import (
    BACKGROUNDS_NAME,
    finish_objects,
    object_row,
    prepare_backgrounds,
    reset_folder,
    save_png,
)

# Fraction of the ellipse radius at full opacity; the rest fades out.
SOLID_RADIUS = 0.8
# Longest side of a demo cut-out: the demo canvas is small, larger cut-outs only cost time.
MAX_CUTOUT_SIDE = 320
TEXTURE_TINTS = {"grass": (0.55, 0.85, 0.45), "gravel": (0.95, 0.9, 0.85), "brick": (1.0, 0.7, 0.6)}


def soft_ellipse_mask(width: int, height: int, solid: float = SOLID_RADIUS) -> np.ndarray:
    """uint8 alpha: 255 inside ``solid`` of the inscribed ellipse, cosine fall-off to 0 at its edge."""
    ys = (np.arange(height) + 0.5) / height * 2.0 - 1.0
    xs = (np.arange(width) + 0.5) / width * 2.0 - 1.0
    radius = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)
    ramp = np.clip((1.0 - radius) / (1.0 - solid), 0.0, 1.0)
    alpha = 0.5 - 0.5 * np.cos(np.pi * ramp)
    return np.round(alpha * 255.0).astype(np.uint8)


def demo_cutout(photo: Image.Image, max_side: int = MAX_CUTOUT_SIDE) -> Image.Image:
    photo = photo.convert("RGB")
    if max(photo.size) > max_side:
        scale = max_side / max(photo.size)
        photo = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))), Image.Resampling.LANCZOS)
    rgba = photo.copy()
    rgba.putalpha(Image.fromarray(soft_ellipse_mask(photo.width, photo.height), "L"))
    return rgba.crop(rgba.getchannel("A").getbbox())


def prepare_demo_objects(objects_dir: str | Path, max_side: int = MAX_CUTOUT_SIDE, limit: int | None = None) -> pd.DataFrame:
    """One cut-out per demo superclass (the first ``limit`` of them) -> ``objects_dir/objects.csv``."""
    from oodbench.datasets.demo import DEMO_SUPERCLASSES, load_demo_photo

    objects_dir = Path(objects_dir)
    reset_folder(objects_dir)
    rows = []
    for spec in DEMO_SUPERCLASSES[:limit]:
        cutout = demo_cutout(load_demo_photo(spec.superclass), max_side)
        object_id = f"demo-{spec.superclass}"
        relative = f"cutouts/{object_id}.png"
        save_png(cutout, objects_dir / relative)
        rows.append(object_row(object_id, spec.superclass, spec.imagenet, relative, cutout, source=f"demo:{spec.photo}"))
    return finish_objects(rows, objects_dir)


def texture_background(name: str, size: tuple[int, int]) -> Image.Image:
    from skimage import data

    grey = getattr(data, name)().astype(np.float64)
    tint = np.asarray(TEXTURE_TINTS[name])
    rgb = np.clip(grey[..., None] * tint[None, None, :], 0, 255).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if image.width < size[0] or image.height < size[1]:
        scale = max(size[0] / image.width, size[1] / image.height)
        image = image.resize((round(image.width * scale + 0.5), round(image.height * scale + 0.5)), Image.Resampling.BICUBIC)
    return image


def sky_background(size: tuple[int, int]) -> Image.Image:
    width, height = size
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    top, bottom = np.array([70, 130, 200]), np.array([225, 235, 245])
    rows = (1 - t) * top + t * bottom
    return Image.fromarray(np.broadcast_to(rows, (height, width, 3)).round().astype(np.uint8), "RGB")


def sand_background(size: tuple[int, int], seed: int) -> Image.Image:
    width, height = size
    noise = np.random.default_rng(seed).normal(0.0, 6.0, (height, width, 1))
    rgb = np.clip(np.array([214, 196, 160])[None, None, :] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def prepare_demo_backgrounds(folder: str | Path, canvas: tuple[int, int], table_path: str | Path, seed: int = 0) -> pd.DataFrame:
    """Write the five demo backgrounds as PNGs into ``folder`` and validate them into a table."""
    folder = Path(folder)
    reset_folder(folder)
    images = {name: texture_background(name, canvas) for name in TEXTURE_TINTS}
    images["sky"] = sky_background(canvas)
    images["sand"] = sand_background(canvas, seed)
    for name, image in images.items():
        save_png(image, folder / f"{name}.png")
    return prepare_backgrounds(folder, canvas, table_path or folder.parent / BACKGROUNDS_NAME)
