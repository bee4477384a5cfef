"""Give each concurrent GPU job its own device: one flock'ed lock file per device id.

Snakemake's `resources: gpu=1` only counts jobs; it hands out no device ids
(snakemake/snakemake#281). A job calls `acquire_gpu()` *before* torch initialises CUDA; the
first free lock wins, `CUDA_VISIBLE_DEVICES` is narrowed to that id, and the kernel releases
the lock when the process dies, so a killed job never leaks a device.

The lock directory must be node-local (flock over NFS is unreliable and every node has its own
device 0), hence /tmp by default.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

FAKE_GPUS_ENV = "OODBENCH_FAKE_GPUS"
LOCK_DIR_ENV = "OODBENCH_GPU_LOCK_DIR"
TIMEOUT_ENV = "OODBENCH_GPU_LEASE_TIMEOUT"


@dataclass
class GpuLease:
    """A held device (or none: run on the CPU). Keep the object alive for the job's lifetime."""

    device_id: str | None
    lock_path: Path | None
    _handle: object = None

    @property
    def torch_device(self) -> str:
        return "cuda:0" if self.device_id is not None and not _fake_gpus() else "cpu"

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV, f"/tmp/oodbench-gpu-locks-{os.getuid()}"))


def _fake_gpus() -> int:
    return int(os.environ.get(FAKE_GPUS_ENV, "0") or 0)


def candidate_devices() -> list[str]:
    """Device ids this job may use, without initialising CUDA.

    Under SLURM (or any scheduler that sets CUDA_VISIBLE_DEVICES) the visible list *is* the
    allocation; otherwise ask nvidia-smi. Fake devices (tests on machines without GPUs) only
    stand in when nothing is visible, and always keep torch on the CPU.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    fake = _fake_gpus()
    if fake:
        return [str(i) for i in range(fake)]
    return _nvidia_smi_devices()


def _nvidia_smi_devices() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _try_lock(path: Path):
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid={os.getpid()} host={os.uname().nodename}\n")
    handle.flush()
    return handle


def acquire_gpu(lock_dir: Path | None = None, timeout_s: float | None = None) -> GpuLease:
    """Lease one device; returns a CPU lease when the machine has none.

    Waits (with jitter, so simultaneous starters don't retry in lock-step) until a device is
    free or `timeout_s` passes; with `--resources gpu=N` matching the device count the wait is
    normally zero.
    """
    devices = candidate_devices()
    if not devices:
        return GpuLease(device_id=None, lock_path=None)
    if os.environ.get("SLURM_JOB_ID") and os.environ.get("CUDA_VISIBLE_DEVICES"):
        # SLURM gave this job its device; with ConstrainDevices every job sees it as id 0, so
        # a node-wide lock on "gpu0" would serialise jobs that hold different GPUs.
        return GpuLease(device_id=devices[0], lock_path=None)
    lock_dir = lock_dir or default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    timeout_s = float(os.environ.get(TIMEOUT_ENV, timeout_s if timeout_s is not None else 3600))
    deadline = time.monotonic() + timeout_s
    while True:
        for device in devices:
            path = lock_dir / f"gpu{device}.lock"
            handle = _try_lock(path)
            if handle is not None:
                if not _fake_gpus():
                    os.environ["CUDA_VISIBLE_DEVICES"] = device
                return GpuLease(device_id=device, lock_path=path, _handle=handle)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no free GPU among {devices} after {timeout_s:.0f} s (locks in {lock_dir}); "
                "run snakemake with --resources gpu=N where N is the number of devices"
            )
        time.sleep(0.2 + random.random() * 0.3)
