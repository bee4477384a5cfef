"""Evaluation preprocessing: which pixels a model sees, and how to produce them once.

A `Preprocessing` splits in two halves. The geometric half (resize the shorter side, centre
crop, interpolation, border crop) is expensive and identical for every model that shares it, so
it names the uint8 cache (`cache_key`). The photometric half (mean/std) is per model and is
applied on the device to each batch, as timm's prefetcher does.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
BACKENDS = ("tensor", "pil")
PAPER_RESIZE_FACTOR = 1.15  # Appendix C: shorter side to floor(1.15 r), centre crop r


@dataclass(frozen=True)
class Preprocessing:
    crop: int
    resize: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    border_crop: int = 0
    backend: str = "tensor"

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {INTERPOLATIONS}")
        if self.backend not in BACKENDS:
            raise ValueError(f"preprocessing backend {self.backend!r} is not one of {BACKENDS}")
        if self.resize < self.crop:
            raise ValueError(f"resize {self.resize} is smaller than the crop {self.crop}")

    @property
    def geometry(self) -> dict:
        """The geometric half: what the uint8 cache is decoded with."""
        return {
            "crop": self.crop,
            "resize": self.resize,
            "interpolation": self.interpolation,
            "backend": self.backend,
            "border_crop": self.border_crop,
        }

    @property
    def cache_key(self) -> str:
        """Name of the uint8 tensor cache: everything geometric, nothing photometric."""
        key = f"{self.crop}c{self.resize}r-{self.interpolation}-{self.backend}"
        return f"{key}-b{self.border_crop}" if self.border_crop else key

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def square_size(input_size, model: str) -> int:
    height, width = input_size[-2], input_size[-1]
    if height != width:
        raise ValueError(
            f"model {model!r}: non-square input size {tuple(input_size)} is not supported; "
            "set preprocessing.input_size to a square size in its config entry"
        )
    return int(width)


def resolve_preprocessing(
    pretrained_cfg: dict,
    resolution: str | int,
    model: str = "?",
    border_crop: int = 0,
    backend: str = "tensor",
) -> Preprocessing:
    """The model's own preprocessing (`default`) or the paper's protocol at integer resolution r."""
    interpolation = pretrained_cfg.get("interpolation") or "bicubic"
    mean = tuple(float(v) for v in pretrained_cfg["mean"])
    std = tuple(float(v) for v in pretrained_cfg["std"])
    if str(resolution) == "default":
        if pretrained_cfg.get("crop_mode", "center") != "center":
            raise ValueError(
                f"model {model!r}: crop_mode {pretrained_cfg['crop_mode']!r} is not supported; "
                "only centre crops are"
            )
        crop = square_size(pretrained_cfg["input_size"], model)
        crop_pct = float(pretrained_cfg.get("crop_pct") or 0.875)
        resize = math.floor(crop / crop_pct)  # timm's transforms_imagenet_eval
    else:
        crop = int(resolution)
        resize = math.floor(PAPER_RESIZE_FACTOR * crop)
    return Preprocessing(crop, resize, interpolation, mean, std, border_crop, backend)


def resized_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """Shape after resizing the shorter side to `shorter`, as torchvision/timm compute it."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def _remove_border(image, border: int, path: Path):
    if not border:
        return image
    height, width = image.shape[-2:]
    if height <= 2 * border or width <= 2 * border:
        raise ValueError(f"{path}: image {width}x{height} is too small for a {border}px border crop")
    return image[..., border : height - border, border : width - border]


def load_tensor(path: Path, geometry: dict):
    """Decode and resize one image with torchvision's uint8 kernels → uint8 tensor 3×crop×crop."""
    import torch
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    try:
        image = decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"cannot decode image {path}: {err}") from err
    image = _remove_border(image, geometry["border_crop"], path)
    image = F.resize(
        image,
        [geometry["resize"]],
        interpolation=InterpolationMode(geometry["interpolation"]),
        antialias=True,
    )
    image = F.center_crop(image, [geometry["crop"]])
    return image.contiguous() if isinstance(image, torch.Tensor) else image


def load_pil(path: Path, geometry: dict):
    """The timm/validate.py path (PIL resize), bit-compatible with torchvision's PIL transforms."""
    import torch
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    try:
        with Image.open(path) as raw:
            image = raw.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot decode image {path}: {err}") from err
    border = geometry["border_crop"]
    if border:
        width, height = image.size
        if height <= 2 * border or width <= 2 * border:
            raise ValueError(f"{path}: image {width}x{height} is too small for a {border}px border crop")
        image = image.crop((border, border, width - border, height - border))
    image = F.resize(image, geometry["resize"], interpolation=InterpolationMode(geometry["interpolation"]))
    image = F.center_crop(image, geometry["crop"])
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy())


LOADERS = {"tensor": load_tensor, "pil": load_pil}


def load_image(path: Path, geometry: dict):
    return LOADERS[geometry["backend"]](path, geometry)
