"""Whole-workflow tests: real Snakemake, real HDF5, the fixture model with known logits."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake, snakemake_cmd, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.xdist_group("workflow")]


def score_value(workdir: Path, dataset: str, resolution: str, metric: str, subset: str = "all") -> float:
    table = pd.read_csv(workdir / f"results/scores/fixture/{dataset}/{resolution}.csv", dtype={"resolution": str})
    row = table[(table.metric == metric) & (table.subset == subset)]
    assert len(row) == 1, (metric, subset, table)
    return float(row.value.iloc[0])


def test_full_config_dry_run_lists_the_predict_grid(tmp_path):
    """config.yaml builds its whole DAG without data or checkpoints (a dry-run only warns)."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    result = run_snakemake(tmp_path, "-n", "--quiet", "rules", "--resources", "gpu=4", timeout=900)
    assert result.returncode == 0, result.output[-3000:]
    fixres = [m for m in config["fixres"]["models"]]
    n_fixres_res = len(config["fixres"]["resolutions"])
    per_dataset = len(config["models"]) * len(config["resolutions"]) + len(fixres) * n_fixres_res
    expected = 0
    for name, dataset in config["datasets"].items():
        if not dataset.get("enabled", True):
            continue
        if dataset["kind"] == "synthetic":  # the model grid of Section 4.3 only, own preprocessing
            expected += len(dataset["models"])
        else:
            expected += per_dataset
    flat = " ".join(result.output.split())
    assert f"predict {expected}" in flat, flat[-3000:]
    assert f"finetune_fixres {len(fixres) * n_fixres_res}" in flat
    assert "dry-run only" in result.output and "checkpoints/vivi_3x.pth" in result.output
    assert result.output.count("checkpoints/vivi_3x.pth does not exist") == 1, "warn once per model"


def test_single_figure_target_dry_run(workdir):
    result = run_snakemake(workdir, "results/figures/accuracy_vs_resolution.pdf", "-n", "--quiet", "rules")
    assert result.returncode == 0, result.output
    flat = " ".join(result.output.split())
    assert "plot_accuracy_vs_resolution 1" in flat
    assert "predict 4" in flat


def test_bad_config_fails_naming_the_key(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["models"]["fixture"]["batch_sise"] = 3
    write_config(workdir, config, "bad.yaml")
    result = run_snakemake(workdir, "-n", configfile="bad.yaml")
    assert result.returncode != 0
    assert "batch_sise" in result.output

    config["models"]["fixture"].pop("batch_sise")
    config["resolutions"] = ["default", "224px"]
    write_config(workdir, config, "bad2.yaml")
    result = run_snakemake(workdir, "-n", configfile="bad2.yaml")
    assert result.returncode != 0
    assert "224px" in result.output


def test_missing_checkpoint_stops_before_any_job(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["models"]["ckpt"] = {
        "loader": "checkpoint", "timm": "resnet18", "checkpoint": "weights/nowhere.pth", "group": "x",
    }
    write_config(workdir, config)
    result = run_snakemake(workdir)
    assert result.returncode != 0
    assert "weights/nowhere.pth" in result.output
    assert not (workdir / "results").exists()
    dry = run_snakemake(workdir, "-n")
    assert dry.returncode == 0, dry.output
    assert "weights/nowhere.pth" in dry.output


def test_run_gives_exact_scores_and_is_incremental(workdir):
    result = run_snakemake(workdir)
    assert result.returncode == 0, result.output

    for resolution in ("default", "24"):
        assert score_value(workdir, "fx_plain", resolution, "top1") == pytest.approx(4 / 6)
        assert score_value(workdir, "fx_frames", resolution, "pm0") == 1.0
        assert score_value(workdir, "fx_frames", resolution, "pm1") == 1.0
        assert score_value(workdir, "fx_frames", resolution, "pm2") == 0.5
        assert score_value(workdir, "fx_frames", resolution, "top1") == pytest.approx(9 / 10)

    with h5py.File(workdir / "results/predictions/fixture/fx_plain/24.h5") as h5:
        assert h5["logits"].dtype == "float16" and h5["logits"].shape == (6, 1000)
        assert [s.decode() for s in h5["image_id"][...]] == [f"fx_plain-{i}" for i in range(6)]
        assert h5["logits"][0].argmax() == 10 and h5["logits"][5].argmax() == 24
        for key in ("model", "weights_digest", "preprocessing", "manifest_digest", "versions", "device", "dtype", "images_per_s"):
            assert key in h5.attrs, key
    metrics = pd.read_csv(workdir / "results/metrics.csv")
    assert set(metrics.columns) >= {"model", "dataset", "resolution", "metric", "subset", "value", "n", "group", "params"}
    assert (metrics.group == "fixture").all()
    assert (workdir / "results/figures/accuracy_vs_resolution.png").stat().st_size > 1000
    assert not list((workdir / "results").rglob("*.npy")), "the uint8 caches go when the run succeeds"
    logs = [(workdir / f"logs/predict/fixture/fx_plain/{r}.log").read_text() for r in ("default", "24")]
    assert all("decoding 6 images" in log for log in logs), "each key is decoded by its first job"

    again = run_snakemake(workdir)
    assert again.returncode == 0 and "Nothing to be done" in again.output, again.output

    # adding a model adds only its jobs; two models of one key decode it once
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["models"]["fixture_b"] = dict(config["models"]["fixture"])
    config["models"]["fixture_c"] = dict(config["models"]["fixture"])
    write_config(workdir, config)
    added = run_snakemake(workdir, "-n", "--quiet", "rules")
    flat = " ".join(added.output.split())
    assert "predict 8" in flat and "score 8" in flat, added.output
    result = run_snakemake(workdir, "results/predictions/fixture_b/fx_plain/24.h5", "results/predictions/fixture_c/fx_plain/24.h5")
    assert result.returncode == 0, result.output
    logs = [(workdir / f"logs/predict/{m}/fx_plain/24.log").read_text() for m in ("fixture_b", "fixture_c")]
    assert sum("decoding 6 images" in log for log in logs) == 1, logs
    assert sum("using the shared cache" in log for log in logs) == 1, logs
    config["models"].pop("fixture_b")
    config["models"].pop("fixture_c")
    write_config(workdir, config)

    # Snakemake ignores a bare touch of a small input whose checksum it recorded; a re-prepared
    # dataset changes its manifest, which must rerun that dataset's jobs and nothing else.
    manifest = workdir / "data/fx_frames/manifest.csv"
    frame = pd.read_csv(manifest)
    frame.loc[frame.frame_offset == 2, "label"] = 0
    frame.to_csv(manifest, index=False)
    rerun = run_snakemake(workdir, "-n", "--quiet", "rules")
    flat = " ".join(rerun.output.split())
    assert "predict 2" in flat and "score 2" in flat, rerun.output
    assert "fx_plain" not in rerun.output


def test_killed_predict_leaves_nothing_complete_and_rerun_finishes(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["models"]["fixture"]["factory_args"] = {"sleep_s": 3.0}
    config["datasets"].pop("fx_frames")
    config["resolutions"] = ["default"]
    write_config(workdir, config)
    out = workdir / "results/predictions/fixture/fx_plain/default.h5"
    proc = subprocess.Popen(
        snakemake_cmd(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, OODBENCH_GPU_LOCK_DIR=str(workdir / ".gpu-locks")), start_new_session=True,
    )
    log = workdir / "logs/predict/fixture/fx_plain/default.log"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.exists() and "model fixture" in log.read_text()):
        time.sleep(0.5)
    time.sleep(2.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed predict job must not leave its output"
    leftovers = list(out.parent.iterdir()) if out.parent.exists() else []
    assert all(p.name.startswith(".") for p in leftovers), "only hidden temporaries may be left"

    # a SIGKILLed Snakemake leaves its directory lock: the documented recovery
    assert run_snakemake(workdir, "--unlock").returncode == 0
    result = run_snakemake(workdir, "--rerun-incomplete")
    assert result.returncode == 0, result.output
    with h5py.File(out) as h5:
        assert h5["logits"].shape == (6, 1000)


def test_concurrent_predict_jobs_get_distinct_fake_gpus(workdir):
    """2N predict jobs on N=4 fake devices: never more than 4 at once, overlapping jobs on
    different devices (the lease + --resources gpu=4), every device used."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["models"]["fixture"]["factory_args"] = {"sleep_s": 2.0}
    config["resolutions"] = ["default", 20, 24, 28]
    write_config(workdir, config)
    predictions = [f"results/predictions/fixture/{d}/{r}.h5" for d in ("fx_plain", "fx_frames") for r in ("default", "20", "24", "28")]
    result = run_snakemake(
        workdir, *predictions, "--cores", "8", "--resources", "gpu=4", "--set-threads", "predict=1",
        env={"OODBENCH_FAKE_GPUS": "4"},
    )
    assert result.returncode == 0, result.output
    spans = []
    for path in predictions:
        with h5py.File(workdir / path) as h5:
            spans.append((float(h5.attrs["started"]), float(h5.attrs["finished"]), h5.attrs["gpu_lease_id"]))
    events = sorted([(s, 1) for s, _, _ in spans] + [(f, -1) for _, f, _ in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 4
    for i, (s1, f1, g1) in enumerate(spans):
        for s2, f2, g2 in spans[i + 1 :]:
            if s1 < f2 and s2 < f1:
                assert g1 != g2, spans
    assert {g for _, _, g in spans} == {"0", "1", "2", "3"}, spans


def test_warns_when_gpu_concurrency_is_unlimited(workdir):
    result = run_snakemake(workdir, "-n")
    assert "GPU concurrency is unlimited" in result.output
    result = run_snakemake(workdir, "-n", "--resources", "gpu=2")
    assert "GPU concurrency is unlimited" not in result.output


def test_resolution_sweep_dag_grows_only_by_the_new_resolution(workdir):
    """2 models × 8 resolutions: the expected jobs, and a ninth resolution adds exactly one
    predict and one score per model."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["models"]["fixture_b"] = dict(config["models"]["fixture"])
    config["datasets"].pop("fx_frames")
    sweep = [16, 20, 24, 28, 32, 40, 48, 56]
    config["resolutions"] = sweep
    write_config(workdir, config)
    result = run_snakemake(workdir, "-n", "--quiet", "rules")
    flat = " ".join(result.output.split())
    assert result.returncode == 0, result.output
    assert "predict 16" in flat and "score 16" in flat, flat[-1500:]

    config["resolutions"] = sweep + [64]
    write_config(workdir, config)
    result = run_snakemake(workdir, "results/metrics.csv", "-n", "--quiet", "rules")
    assert "predict 18" in " ".join(result.output.split())

    # run the 8-resolution sweep, then add the ninth: only its 2 predict + 2 score jobs (+ table)
    config["resolutions"] = sweep
    write_config(workdir, config)
    assert run_snakemake(workdir, "results/metrics.csv").returncode == 0
    config["resolutions"] = sweep + [64]
    write_config(workdir, config)
    result = run_snakemake(workdir, "results/metrics.csv", "-n", "--quiet", "rules")
    flat = " ".join(result.output.split())
    assert "predict 2" in flat and "score 2" in flat and "metrics_table 1" in flat, flat[-1500:]
