"""GPU lease: concurrent jobs on fake devices get distinct ids, never more than the devices."""

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oodbench.gpu_lease import acquire_gpu, candidate_devices

HOLDER = """
import json, sys, time
from pathlib import Path
from oodbench.gpu_lease import acquire_gpu
lease = acquire_gpu(timeout_s=60)
start = time.time()
time.sleep(float(sys.argv[2]))
Path(sys.argv[1]).write_text(json.dumps({"id": lease.device_id, "start": start, "end": time.time()}))
"""


def run_holders(tmp_path: Path, n_jobs: int, n_devices: int, hold_s: float) -> list[dict]:
    env = dict(os.environ, OODBENCH_FAKE_GPUS=str(n_devices), OODBENCH_GPU_LOCK_DIR=str(tmp_path / "locks"))
    procs = [
        subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / f"job{i}.json"), str(hold_s)], env=env)
        for i in range(n_jobs)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    return [json.loads((tmp_path / f"job{i}.json").read_text()) for i in range(n_jobs)]


def max_overlap(records: list[dict]) -> int:
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records], key=lambda e: (e[0], e[1]))
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def test_eight_jobs_on_four_fake_devices(tmp_path):
    records = run_holders(tmp_path, n_jobs=8, n_devices=4, hold_s=1.5)
    assert {r["id"] for r in records} <= {"0", "1", "2", "3"}
    assert max_overlap(records) <= 4
    for a in records:
        for b in records:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["id"] != b["id"], (a, b)
    assert len({r["id"] for r in records}) == 4, "all four devices should be used"


def test_lock_is_released_when_the_holder_dies(tmp_path, monkeypatch):
    monkeypatch.setenv("OODBENCH_FAKE_GPUS", "1")
    monkeypatch.setenv("OODBENCH_GPU_LOCK_DIR", str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "x.json"), "30"], env=dict(os.environ))
    deadline = time.time() + 30
    while not (tmp_path / "gpu0.lock").exists() or not (tmp_path / "gpu0.lock").read_text():
        assert time.time() < deadline
        time.sleep(0.1)
    with pytest.raises(TimeoutError, match="no free GPU"):
        acquire_gpu(timeout_s=0.5)
    proc.kill()
    proc.wait()
    lease = acquire_gpu(timeout_s=5)
    assert lease.device_id == "0"
    lease.release()


def test_candidates_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("OODBENCH_FAKE_GPUS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert candidate_devices() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert candidate_devices() == []
    assert acquire_gpu().device_id is None


def test_under_slurm_the_allocation_is_used_without_a_lock(monkeypatch, tmp_path):
    monkeypatch.setenv("OODBENCH_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("OODBENCH_FAKE_GPUS", "4")
    first, second = acquire_gpu(timeout_s=0.1), acquire_gpu(timeout_s=0.1)
    assert first.device_id == second.device_id == "0"  # two jobs on two confined GPUs
    assert first.lock_path is None and not list(tmp_path.iterdir())
