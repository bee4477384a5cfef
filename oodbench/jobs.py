"""What each pipeline job does, as plain functions: scripts/ only unpack the snakemake object.

Nothing here imports torch at module level: `predict` must take its GPU lease first.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from oodbench.atomic import write_csv
from oodbench.datasets.manifest import manifest_digest, read_classes, read_manifest
from oodbench.metrics import METADATA_COLUMNS, PIPELINE_SOURCE, SCORE_COLUMNS
from oodbench.preprocessing import Preprocessing

log = logging.getLogger("oodbench")


def setup_logging(log_path: str | None) -> None:
    """Job log = logging + tqdm progress (both on stderr), redirected to the rule's log file."""
    import sys

    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_path, "w", buffering=1)
        sys.stderr = handle
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr, force=True
    )


def progress_bar(**kwargs):
    import sys

    from tqdm import tqdm

    return tqdm(file=sys.stderr, **kwargs)


def cache_images(manifest_path: str, geometry: dict, out_path: str, workers: int) -> None:
    from oodbench.cache import build_cache

    manifest = read_manifest(manifest_path, check_files=True)
    root = Path(manifest_path).parent
    paths = [root / p for p in manifest["path"]]
    log.info("decoding %d images of %s with %s", len(paths), manifest_path, geometry)
    rate = build_cache(paths, geometry, Path(out_path), workers=workers, progress=progress_bar)
    log.info("cache %s written: %.1f images/s", out_path, rate)


def predict(
    *,
    model_name: str,
    entry: dict,
    dataset: str,
    resolution: str,
    preprocessing: dict,
    manifest_path: str,
    cache_dir: str,
    out_path: str,
    batch_size: int,
    threads: int,
    amp: str,
    logits_dtype: str,
) -> None:
    """Lease a device, load the model, run it over the shared uint8 cache of its dataset and
    geometric preprocessing (built by the first job that needs it), write the logits file."""
    from oodbench.gpu_lease import acquire_gpu

    lease = acquire_gpu()
    started = time.time()
    import torch

    from oodbench.cache import open_cache
    from oodbench.inference import predict_logits
    from oodbench.logits_file import LOGIT_DTYPES, package_versions, write_logits
    from oodbench.models.registry import build_model, num_params, weights_digest

    torch.set_num_threads(max(1, threads))
    device = lease.torch_device
    log.info("model %s on %s (lease %s), %s @ %s", model_name, device, lease.device_id, dataset, resolution)
    manifest = read_manifest(manifest_path, check_files=False)
    model = build_model(entry, model_name)
    with shared_cache(Path(cache_dir), dataset, manifest_path, preprocessing, threads) as cache:
        images = open_cache(Path(cache))
        if images.shape[0] != len(manifest):
            raise ValueError(f"{cache}: {images.shape[0]} images, manifest {manifest_path} has {len(manifest)}")
        logits, info = predict_logits(
            model,
            images,
            preprocessing["mean"],
            preprocessing["std"],
            device=device,
            batch_size=batch_size,
            amp=amp,
            out_dtype=LOGIT_DTYPES[logits_dtype],
            progress=progress_bar,
        )
    log.info("%.1f images/s (batch size %d)", info["images_per_s"], info["batch_size"])
    attrs = {
        "model": model_name,
        "dataset": dataset,
        "resolution": str(resolution),
        "weights_digest": weights_digest(model),
        "num_params": num_params(model),
        "preprocessing": preprocessing,
        "manifest_digest": manifest_digest(manifest_path),
        "versions": package_versions(),
        "device": device if lease.device_id is None else f"{device} (gpu {lease.device_id})",
        "gpu_lease_id": "" if lease.device_id is None else str(lease.device_id),
        "dtype": logits_dtype,
        "amp": info["amp"],
        "images_per_s": float(info["images_per_s"]),
        "batch_size": int(info["batch_size"]),
        "started": started,
        "finished": time.time(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_logits(Path(out_path), logits, manifest["image_id"].tolist(), attrs)
    lease.release()


def cache_path_for(cache_dir: Path, dataset: str, manifest_path: str, preprocessing: Preprocessing) -> Path:
    """One file per (dataset, geometric preprocessing, manifest content): a re-prepared
    dataset never meets a stale cache."""
    return cache_dir / dataset / f"{preprocessing.cache_key}-{manifest_digest(manifest_path)[:12]}.npy"


@contextlib.contextmanager
def shared_cache(cache_dir: Path, dataset: str, manifest_path: str, preprocessing: dict, threads: int):
    """Decode once: the first job with this key builds the cache under an exclusive lock while
    jobs with the same key wait, then every job reads it memory-mapped. The cache lives outside
    the DAG on purpose: a temporary DAG file rebuilt for a newly added model would make every
    other model's logits look outdated. Where locks are unsupported (some network file
    systems) the job decodes into a private cache instead."""
    prep = Preprocessing(**preprocessing)
    geometry = prep.geometry
    path = cache_path_for(cache_dir, dataset, manifest_path, prep)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = open(path.with_suffix(".lock"), "a")
        fcntl.flock(lock, fcntl.LOCK_EX)
    except OSError as err:
        log.warning("cannot lock %s (%s): decoding into a private cache", path, err)
        with tempfile.TemporaryDirectory(prefix="oodbench-cache-") as tmp:
            private = Path(tmp) / path.name
            cache_images(manifest_path, geometry, str(private), threads)
            yield private
        return
    with lock:
        if path.exists():
            log.info("using the shared cache %s", path)
        else:
            cache_images(manifest_path, geometry, str(path), threads)
        fcntl.flock(lock, fcntl.LOCK_UN)
    yield path


def score(
    *, logits_path: str, manifest_path: str, classes_path: str, out_path: str, model: str, dataset: str, resolution: str, pm_ks
) -> None:
    from oodbench.logits_file import read_logits
    from oodbench.metrics import score_table

    manifest = read_manifest(manifest_path, check_files=False)
    logits, _ = read_logits(Path(logits_path), manifest_digest(manifest_path), expected_rows=len(manifest))
    table = score_table(logits, manifest, read_classes(classes_path), pm_ks=pm_ks)
    table.insert(0, "resolution", str(resolution))
    table.insert(0, "dataset", dataset)
    table.insert(0, "model", model)
    write_csv(table, out_path)


def corruption_errors(*, corrupted_path: str, clean_path: str | None, out_path: str, alexnet: str) -> None:
    """CE per corruption and mCE (Hendrycks & Dietterich), normalised by AlexNet's errors;
    relative CE/mCE too when the clean dataset's top-1 is given."""
    from oodbench.datasets.imagenet_c import corruption_error_rows

    scores = pd.read_csv(corrupted_path, dtype={"resolution": str, "subset": str})
    clean_top1 = None
    if clean_path is not None:
        clean = pd.read_csv(clean_path, dtype={"subset": str})
        clean_top1 = float(clean.query("metric == 'top1' and subset == 'all'")["value"].iloc[0])
    rows = corruption_error_rows(scores, clean_top1, alexnet=alexnet)
    first = scores.iloc[0]
    for column in ("resolution", "dataset", "model"):
        rows.insert(0, column, first[column])
    write_csv(rows[SCORE_COLUMNS], out_path)


def metrics_table(*, score_paths: list[str], logits_paths: list[str], models: dict, out_path: str) -> None:
    """All score rows + model metadata (group, params, pre-training data) in one tidy table."""
    from oodbench.logits_file import read_attrs

    frames = [pd.read_csv(p, dtype={"resolution": str, "subset": str}) for p in score_paths]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)
    params = {}
    for path in logits_paths:
        attrs = read_attrs(Path(path))
        params[attrs["model"]] = attrs.get("num_params")
    meta = pd.DataFrame(
        [
            {
                "model": name,
                "group": entry.get("group", ""),
                "params": entry.get("params") or params.get(name),
                "pretraining_data": entry.get("pretraining_data", ""),
            }
            for name, entry in models.items()
        ],
        columns=["model", "group", "params", "pretraining_data"],
    )
    table = table.merge(meta, on="model", how="left")
    table["source"] = PIPELINE_SOURCE
    write_csv(table[SCORE_COLUMNS + METADATA_COLUMNS], out_path)
