"""The `finetune_fixres` job: lease a device, build the base model, fine-tune, write the checkpoint.

Nothing heavy at import: the GPU lease must be taken before torch is imported.
"""

from __future__ import annotations

import logging

log = logging.getLogger("oodbench")


def run_fixres(
    *,
    base_model: str,
    entry: dict,
    resolution: int,
    settings: dict,
    train_manifest: str,
    out_path: str,
    backend: str = "tensor",
    threads: int = 1,
) -> dict:
    """``settings``: the model's resolved `fixres` settings (`settings.job_settings`); the
    schedule follows from them and ``entry`` (`settings.schedule_of`)."""
    from oodbench.gpu_lease import acquire_gpu

    lease = acquire_gpu()
    import torch

    from oodbench.finetune.data import load_training_set
    from oodbench.finetune.settings import schedule_of
    from oodbench.finetune.trainer import FineTuneSettings, fine_tune
    from oodbench.jobs import progress_bar
    from oodbench.models.registry import build_model, pretrained_cfg, weights_digest
    from oodbench.preprocessing import resolve_preprocessing

    torch.set_num_threads(max(1, threads))
    schedule = schedule_of(settings, entry)
    run_settings = FineTuneSettings(
        resolution=int(resolution),
        schedule=schedule,
        micro_batch=settings.get("micro_batch"),
        trainable=settings["trainable"],
        seed=int(settings["seed"]),
        hflip=bool(settings["hflip"]),
        state_every=int(settings["state_every"]),
        num_workers=min(int(settings["num_workers"]), max(0, threads - 1)),
        amp=settings["amp"],
    )
    preprocessing = resolve_preprocessing(
        pretrained_cfg(entry, base_model), int(resolution), model=base_model, backend=backend
    )
    train_set = load_training_set(train_manifest)
    log.info(
        "FixRes %s @ %d on %s (lease %s): %d training images, %d steps of batch %d (micro %s), peak lr %.2e, trainable %s",
        base_model, resolution, lease.torch_device, lease.device_id, len(train_set), schedule.total_steps,
        schedule.batch_size, run_settings.micro_batch, schedule.peak_lr, run_settings.trainable,
    )
    model = build_model(entry, base_model)
    provenance = {
        "base_model": base_model,
        "base_entry": entry,
        "base_weights_digest": weights_digest(model),
        "timm_architecture": entry.get("timm"),
    }
    final = fine_tune(
        model, train_set, preprocessing, run_settings, out_path, provenance,
        device=lease.torch_device, progress=progress_bar,
    )
    log.info("wrote %s: loss %.4f → %.4f", out_path, final["loss_first"], final["loss_last"])
    return final
