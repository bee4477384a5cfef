"""Paste an RGBA cut-out onto a canvas at a requested area, centre and rotation.

Conventions (all documented in the README's synthetic section):

* **Area** is the object's *mask* area: the alpha mass ``sum(alpha) / 255`` of the transformed
  cut-out, as a fraction of the canvas area ``W * H``. SI-Score (the authors' generator) used the
  area of the cut-out's bounding box instead; the mask area is what the eye sees as the object's
  size, it does not depend on how tightly the cut-out was cropped, and rotation preserves it
  (a bounding box grows under rotation). ``area_basis="bbox"`` reproduces SI-Score's choice.
* **Centre**: the anchor of a cut-out is the centre of its tight alpha bounding box (upright).
  Rotation turns the object about that anchor, and the anchor lands on ``(x * W, y * H)`` in
  continuous canvas coordinates (pixel ``i`` covers ``[i, i + 1)``), to sub-pixel precision.
* **Angle** in degrees, counter-clockwise as seen on screen (as PIL's ``Image.rotate``).
* **Visible fraction**: alpha mass of the transformed object that falls inside the canvas divided
  by its total alpha mass, computed on the pixels, not on a bounding box.

The cut-out is first shrunk/enlarged with an antialiasing resize to the smallest integer size
at or above the target, then one affine resampling applies the residual (sub-pixel) scale, the
rotation and the sub-pixel translation. Both steps use premultiplied alpha (Pillow does this for
RGBA), so no dark fringes appear at soft mask edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

RESAMPLE = Image.Resampling.BICUBIC
AREA_BASES = ("mask", "bbox")


class GeometryError(ValueError):
    """A cut-out or placement request that cannot be honoured; the message says why."""


@dataclass(frozen=True)
class Placement:
    """Where and how large the object goes: ``area`` fraction of the canvas, centre ``(x, y)``
    as fractions of width/height, ``angle`` in degrees counter-clockwise."""

    area: float
    x: float
    y: float
    angle: float


@dataclass(frozen=True)
class PlacedObject:
    """A transformed cut-out in a frame aligned to the canvas pixel grid.

    ``frame`` is an RGBA image whose top-left pixel sits at canvas pixel ``origin``;
    ``total_mass`` is its full alpha mass (pixels), ``visible_mass`` the part inside the canvas.
    """

    frame: Image.Image
    origin: tuple[int, int]
    canvas_size: tuple[int, int]
    total_mass: float
    visible_mass: float

    @property
    def visible_fraction(self) -> float:
        return self.visible_mass / self.total_mass if self.total_mass > 0 else 0.0


def crop_to_alpha(cutout: Image.Image, source: str = "cut-out") -> Image.Image:
    """The RGBA cut-out cropped to the tight bounding box of its non-zero alpha."""
    if cutout.mode != "RGBA":
        raise GeometryError(f"{source}: expected an RGBA image, got mode {cutout.mode!r}")
    box = cutout.getchannel("A").getbbox()
    if box is None:
        raise GeometryError(f"{source}: the alpha channel is empty (no object pixels)")
    return cutout.crop(box)


def alpha_mass(image: Image.Image) -> float:
    """Sum of alpha / 255: the object's area in pixels, counting soft edges fractionally."""
    return float(np.asarray(image.getchannel("A"), dtype=np.float64).sum() / 255.0)


def scale_for_area(
    cutout: Image.Image, canvas_size: tuple[int, int], area: float, area_basis: str = "mask"
) -> float:
    """Isotropic scale that makes the cut-out cover ``area`` of the canvas (see module doc)."""
    if not 0.0 < area:
        raise GeometryError(f"area must be > 0, got {area}")
    if area_basis == "mask":
        reference = alpha_mass(cutout)
    elif area_basis == "bbox":
        reference = float(cutout.width * cutout.height)
    else:
        raise GeometryError(f"area_basis must be one of {AREA_BASES}, got {area_basis!r}")
    if reference <= 0:
        raise GeometryError("the cut-out has no object pixels")
    width, height = canvas_size
    return math.sqrt(area * width * height / reference)


def resize_for_scale(cutout: Image.Image, scale: float) -> Image.Image:
    """Antialiased resize to the smallest integer size at or above ``scale`` times the cut-out."""
    size = (max(1, math.ceil(cutout.width * scale - 1e-9)), max(1, math.ceil(cutout.height * scale - 1e-9)))
    if size == cutout.size:
        return cutout
    return cutout.resize(size, RESAMPLE)


def place(
    resized: Image.Image,
    target_size: tuple[float, float],
    placement: Placement,
    canvas_size: tuple[int, int],
) -> PlacedObject:
    """Rotate and translate a resized cut-out onto the canvas grid (one affine resampling).

    ``target_size`` is the exact (fractional) width/height the upright object should have;
    ``resized`` is at least that large, and the affine absorbs the residual scale.
    """
    canvas_w, canvas_h = canvas_size
    scale_x = target_size[0] / resized.width
    scale_y = target_size[1] / resized.height
    theta = math.radians(placement.angle)
    cos, sin = math.cos(theta), math.sin(theta)
    anchor_x, anchor_y = placement.x * canvas_w, placement.y * canvas_h
    half_w, half_h = target_size[0] / 2.0, target_size[1] / 2.0
    # Screen coordinates point down, so counter-clockwise on screen is (dx, dy) ->
    # (cos*dx + sin*dy, -sin*dx + cos*dy).
    corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    rotated_x = anchor_x + cos * corners[:, 0] + sin * corners[:, 1]
    rotated_y = anchor_y - sin * corners[:, 0] + cos * corners[:, 1]
    # One pixel of margin: the bicubic kernel spreads a little beyond the exact outline.
    origin_x, origin_y = math.floor(rotated_x.min()) - 1, math.floor(rotated_y.min()) - 1
    frame_w = math.ceil(rotated_x.max()) + 1 - origin_x
    frame_h = math.ceil(rotated_y.max()) + 1 - origin_y
    # Inverse map, frame -> resized cut-out: p = c + D^-1 R^-1 (q + origin - anchor).
    a, b = cos / scale_x, -sin / scale_x
    d, e = sin / scale_y, cos / scale_y
    offset_x, offset_y = origin_x - anchor_x, origin_y - anchor_y
    coefficients = (
        a,
        b,
        resized.width / 2.0 + a * offset_x + b * offset_y,
        d,
        e,
        resized.height / 2.0 + d * offset_x + e * offset_y,
    )
    frame = resized.transform(
        (frame_w, frame_h), Image.Transform.AFFINE, coefficients, resample=RESAMPLE, fillcolor=(0, 0, 0, 0)
    )
    alpha = np.asarray(frame.getchannel("A"), dtype=np.float64)
    total = alpha.sum() / 255.0
    visible = _visible_window(origin_x, origin_y, frame_w, frame_h, canvas_w, canvas_h)
    inside = 0.0
    if visible is not None:
        left, top, right, bottom = visible
        inside = alpha[top:bottom, left:right].sum() / 255.0
    return PlacedObject(frame, (origin_x, origin_y), (canvas_w, canvas_h), total, inside)


def transform_cutout(
    cutout: Image.Image,
    placement: Placement,
    canvas_size: tuple[int, int],
    area_basis: str = "mask",
) -> PlacedObject:
    """Scale a tight RGBA cut-out to ``placement.area`` and place it (resize + affine)."""
    scale = scale_for_area(cutout, canvas_size, placement.area, area_basis)
    resized = resize_for_scale(cutout, scale)
    return place(resized, (cutout.width * scale, cutout.height * scale), placement, canvas_size)


def composite(background: Image.Image, placed: PlacedObject) -> Image.Image:
    """Alpha-blend the placed object over a copy of the RGB background (canvas-sized)."""
    if background.size != placed.canvas_size:
        raise GeometryError(f"background is {background.size}, the canvas is {placed.canvas_size}")
    canvas = background.convert("RGB") if background.mode != "RGB" else background.copy()
    window = _visible_window(*placed.origin, *placed.frame.size, *placed.canvas_size)
    if window is None:
        return canvas
    left, top, right, bottom = window
    piece = placed.frame.crop((left, top, right, bottom))
    canvas.paste(piece.convert("RGB"), (placed.origin[0] + left, placed.origin[1] + top), piece.getchannel("A"))
    return canvas


def _visible_window(
    origin_x: int, origin_y: int, frame_w: int, frame_h: int, canvas_w: int, canvas_h: int
) -> tuple[int, int, int, int] | None:
    """The part of the frame inside the canvas, in frame pixel coordinates (or None)."""
    left, top = max(0, -origin_x), max(0, -origin_y)
    right, bottom = min(frame_w, canvas_w - origin_x), min(frame_h, canvas_h - origin_y)
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom
