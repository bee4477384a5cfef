"""Preprocessing geometry: the paper's protocol, timm's default path, and the cache key."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.preprocessing import (
    Preprocessing,
    load_pil,
    load_tensor,
    resized_shape,
    resolve_preprocessing,
)

LITE0 = {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bicubic", "mean": (0.5,) * 3, "std": (0.5,) * 3}


@pytest.mark.parametrize("r,resize", [(64, 73), (128, 147), (224, 257), (288, 331), (320, 368), (384, 441), (512, 588), (768, 883)])
def test_paper_protocol_resizes_shorter_side_to_floor_115_r(r, resize):
    prep = resolve_preprocessing(LITE0, r)
    assert prep.crop == r
    assert prep.resize == math.floor(1.15 * r) == resize


def test_default_follows_timm_crop_pct():
    assert resolve_preprocessing(LITE0, "default").resize == 256
    bit = dict(LITE0, input_size=(3, 448, 448), crop_pct=1.0, interpolation="bilinear")
    prep = resolve_preprocessing(bit, "default")
    assert (prep.crop, prep.resize, prep.interpolation) == (448, 448, "bilinear")


@pytest.mark.parametrize("h,w,short,expected", [(300, 400, 256, (256, 341)), (400, 300, 256, (341, 256)), (500, 500, 73, (73, 73)), (375, 500, 883, (883, 1177))])
def test_resized_shape_keeps_aspect_ratio(h, w, short, expected):
    assert resized_shape(h, w, short) == expected


def test_cache_key_and_geometry_ignore_mean_std():
    a = resolve_preprocessing(LITE0, 128, border_crop=2)
    b = resolve_preprocessing(dict(LITE0, mean=(0.485, 0.456, 0.406)), 128, border_crop=2)
    assert a.cache_key == b.cache_key
    assert a.geometry == b.geometry == {"crop": 128, "resize": 147, "interpolation": "bicubic", "backend": "tensor", "border_crop": 2}


def test_non_square_and_bad_values_fail_clearly():
    with pytest.raises(ValueError, match="non-square"):
        resolve_preprocessing(dict(LITE0, input_size=(3, 224, 192)), "default", model="m")
    with pytest.raises(ValueError, match="interpolation"):
        Preprocessing(224, 256, "lanczos9", (0,) * 3, (1,) * 3)


@pytest.mark.parametrize("size", [(400, 300), (300, 400), (333, 333)])
@pytest.mark.parametrize("r", [64, 224, 384])
def test_both_backends_give_crop_sized_uint8_close_to_each_other(tmp_path, size, r):
    rng = np.random.default_rng(0)
    # smooth image: interpolation differences between kernels stay small
    base = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(base).resize(size, Image.BILINEAR).save(tmp_path / "x.png")
    geometry = resolve_preprocessing(LITE0, r).geometry
    a = load_tensor(tmp_path / "x.png", geometry)
    b = load_pil(tmp_path / "x.png", geometry)
    assert a.shape == b.shape == (3, r, r) and a.dtype == b.dtype == torch.uint8
    assert (a.int() - b.int()).abs().float().mean() < 2.0


def test_border_crop_removes_pixels_before_resizing(tmp_path):
    array = np.zeros((40, 40, 3), dtype=np.uint8)
    array[:2, :] = array[-2:, :] = array[:, :2] = array[:, -2:] = 255  # a 2-px white frame
    Image.fromarray(array).save(tmp_path / "framed.png")
    geometry = {"crop": 32, "resize": 36, "interpolation": "bilinear", "backend": "tensor", "border_crop": 2}
    assert load_tensor(tmp_path / "framed.png", geometry).max() == 0
    assert load_pil(tmp_path / "framed.png", dict(geometry, backend="pil")).max() == 0


def test_truncated_jpeg_names_the_file(tmp_path):
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(tmp_path / "ok.jpg", quality=90)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "broken.jpg").write_bytes(data[: len(data) // 3])
    geometry = {"crop": 32, "resize": 36, "interpolation": "bilinear", "backend": "tensor", "border_crop": 0}
    for loader in (load_tensor, load_pil):
        with pytest.raises(ValueError, match="broken.jpg"):
            loader(tmp_path / "broken.jpg", geometry)


def test_building_a_cache_leaves_the_callers_torch_threads_alone(tmp_path):
    # the predict job that builds a cache runs its model in the same process afterwards
    from oodbench.cache import build_cache, open_cache

    for i in range(2):
        Image.fromarray(np.full((40, 50, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        build_cache([tmp_path / "0.png", tmp_path / "1.png"], resolve_preprocessing(LITE0, 32).geometry, tmp_path / "c.npy")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert open_cache(tmp_path / "c.npy").shape == (2, 3, 32, 32)
