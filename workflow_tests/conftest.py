"""Shared fixtures: a tiny workdir with fixture datasets in the manifest layout, and a runner
that drives the real Snakemake CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FIXTURE_MODEL = Path(__file__).with_name("fixture_model.py")
IDENTITY = {"input_size": 32, "crop_pct": 0.875, "interpolation": "bilinear", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


def fixture_model_entry(sleep_s: float = 0.0) -> dict:
    return {
        "loader": "python",
        "factory": f"{FIXTURE_MODEL}:build",
        "factory_args": {"sleep_s": sleep_s},
        "preprocessing": dict(IDENTITY),
        "group": "fixture",
        "pretraining_data": "none",
        "batch_size": 4,
    }


def write_uniform_png(path: Path, red: int, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    array[..., 0] = red
    array[..., 1] = 77
    Image.fromarray(array).save(path)


def write_fixture_dataset(root: Path, name: str, rows: list[dict], classes: list[list[int]]) -> Path:
    """rows: dicts with `red` (the fixture model predicts ImageNet class `red`), `label` and extras."""
    folder = root / "data" / name
    records = []
    for i, row in enumerate(rows):
        rel = f"images/{i:04d}.png"
        write_uniform_png(folder / rel, row["red"])
        record = {"image_id": f"{name}-{i}", "path": rel, "label": row["label"]}
        record.update({k: v for k, v in row.items() if k not in ("red", "label")})
        records.append(record)
    header = list(records[0])
    lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in records]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    payload = {"dataset": name, "source": "test fixture", "classes": [{"name": f"c{k}", "imagenet": m} for k, m in enumerate(classes)]}
    (folder / "classes.json").write_text(json.dumps(payload))
    return folder


# Plain: classes 0→{10}, 1→{20}, 2→{30,31}; predictions 10,20,20,20,31,24 → classes 0,1,1,1,2,1 → correct 1,0,1,1,1,0 = 4/6.
PLAIN_ROWS = [
    {"red": 10, "label": 0},
    {"red": 20, "label": 0},
    {"red": 20, "label": 1},
    {"red": 20, "label": 1},
    {"red": 31, "label": 2},
    {"red": 24, "label": 0},
]
PLAIN_CLASSES = [[10], [20], [30, 31]]

# Frames: two anchors with offsets -2..2; classes 0→{10}, 1→{20}.
# anchor a: all five frames right → pm0 ✓, pm1 ✓, pm2 ✓.
# anchor b: anchor right, offset +2 wrong → pm0 ✓, pm1 ✓, pm2 ✗.
FRAME_ROWS = [{"red": 10, "label": 0, "anchor_id": "a", "frame_offset": o} for o in (-2, -1, 0, 1, 2)] + [
    {"red": 20 if o != 2 else 10, "label": 1, "anchor_id": "b", "frame_offset": o} for o in (-2, -1, 0, 1, 2)
]
FRAME_CLASSES = [[10], [20]]


def base_config(models: dict, datasets: dict, resolutions=("default", 24)) -> dict:
    return {
        "models": models,
        "datasets": datasets,
        "resolutions": list(resolutions),
        "predict": {"batch_size": 4, "threads": 1},
        "scoring": {"pm_k": [0, 1, 2]},
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_fixture_dataset(tmp_path, "fx_plain", PLAIN_ROWS, PLAIN_CLASSES)
    write_fixture_dataset(tmp_path, "fx_frames", FRAME_ROWS, FRAME_CLASSES)
    config = base_config(
        {"fixture": fixture_model_entry()},
        {"fx_plain": {"kind": "prepared"}, "fx_frames": {"kind": "prepared"}},
    )
    write_config(tmp_path, config)
    return tmp_path


def write_config(workdir: Path, config: dict, name: str = "config.yaml") -> Path:
    path = workdir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_cmd(workdir: Path, *args: str, configfile: str = "config.yaml") -> list[str]:
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / configfile),
        "--replace-workflow-config",
        "--workflow-profile", "none",
        "--cores", "2",
        *args,
    ]


def run_snakemake(workdir: Path, *args: str, configfile: str = "config.yaml", env: dict | None = None, timeout: int = 600):
    full_env = dict(os.environ, OODBENCH_GPU_LOCK_DIR=str(workdir / ".gpu-locks"), **(env or {}))
    result = subprocess.run(
        snakemake_cmd(workdir, *args, configfile=configfile),
        capture_output=True, text=True, env=full_env, timeout=timeout,
    )
    result.output = result.stdout + result.stderr
    return result
