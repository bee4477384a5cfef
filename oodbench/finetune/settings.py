"""The `fixres:` config block → per-model settings and the `<model>+fixres<r>` registry entries.

Pure Python (no torch): rules/common.smk calls these at DAG-build time.

    fixres:
      enabled: true
      models: [lite0]            # base models to fine-tune (default: none)
      resolutions: [224, 320]    # target resolutions r (integers of the sweep)
      batch_size: 2048           # effective batch (Appendix C); per model: models.<m>.fixres.batch_size
      micro_batch: 64            # per forward/backward; gradients accumulate to batch_size
      trainable: all             # all | classifier_bn
      train_dataset: imagenet_train
      ...

A model entry may override any of batch_size, micro_batch, trainable, steps, lr, bit in its own
`fixres:` mapping (large models need a smaller micro-batch; the paper lowered the batch for some).
"""

from __future__ import annotations

import math
import re

from oodbench.finetune.schedule import REFERENCE_BATCH, FixResSchedule, fixres_schedule, is_bit_model

FIXRES_NAME = re.compile(r"^(?P<base>.+)\+fixres(?P<resolution>\d+)$")
DEFAULTS = {
    "enabled": True,
    "models": [],
    "resolutions": [],
    "batch_size": REFERENCE_BATCH,
    "micro_batch": None,
    "trainable": "all",
    "steps": None,
    "lr": None,
    "bit": None,
    "seed": 0,
    "hflip": False,
    "state_every": 500,
    "num_workers": 8,
    "amp": "bfloat16",
    "train_dataset": "imagenet_train",
}
PER_MODEL_KEYS = ("batch_size", "micro_batch", "trainable", "steps", "lr", "bit")
# What a finetune_fixres job reads (oodbench.finetune.job): its params carry exactly these, so
# adding a model or resolution, or changing a figure option, does not rerun finished fine-tunes.
JOB_KEYS = PER_MODEL_KEYS + ("seed", "hflip", "state_every", "num_workers", "amp")


def fixres_name(base: str, resolution: int | str) -> str:
    return f"{base}+fixres{int(resolution)}"


def parse_fixres_name(name: str) -> tuple[str, int] | None:
    """(base model, resolution) for a `<model>+fixres<r>` name; None for any other model."""
    match = FIXRES_NAME.match(name)
    return (match["base"], int(match["resolution"])) if match else None


def fixres_block(config: dict) -> dict:
    return {**DEFAULTS, **(config.get("fixres") or {})}


def fixres_pairs(config: dict) -> list[tuple[str, int]]:
    """(base model, resolution) of every fine-tune the config asks for."""
    block = fixres_block(config)
    if not block["enabled"]:
        return []
    models = config.get("models") or {}
    unknown = [m for m in block["models"] if m not in models]
    if unknown:
        raise ValueError(f"fixres.models: {unknown} are not in models: (known: {sorted(models)})")
    bad = [r for r in block["resolutions"] if not isinstance(r, int) or isinstance(r, bool)]
    if bad:
        raise ValueError(f"fixres.resolutions must be integers (fine-tuning targets), got {bad}")
    return [(m, int(r)) for m in block["models"] if models[m].get("enabled", True) for r in block["resolutions"]]


def model_fixres_settings(config: dict, model: str) -> dict:
    """Global `fixres:` values overridden by `models.<model>.fixres`."""
    block = fixres_block(config)
    own = (config["models"][model].get("fixres") or {})
    unknown = sorted(set(own) - set(PER_MODEL_KEYS))
    if unknown:
        raise ValueError(f"models.{model}.fixres: unknown key(s) {unknown}; allowed: {list(PER_MODEL_KEYS)}")
    return {**block, **own}


def job_settings(config: dict, model: str) -> dict:
    """The `finetune_fixres` job's params: the model's resolved settings, `JOB_KEYS` only."""
    settings = model_fixres_settings(config, model)
    return {key: settings[key] for key in JOB_KEYS}


def schedule_of(settings: dict, entry: dict) -> FixResSchedule:
    """The schedule for resolved settings (`job_settings`) and the model's registry entry."""
    return fixres_schedule(
        batch_size=int(settings["batch_size"]),
        bit=is_bit_model(entry.get("timm", ""), settings["bit"]),
        steps=settings["steps"],
        base_lr_per_256=settings["lr"],
    )


def model_schedule(config: dict, model: str) -> FixResSchedule:
    return schedule_of(job_settings(config, model), config["models"][model])


def fixres_entry(config: dict, base: str, resolution: int) -> dict:
    """Registry entry of `<base>+fixres<r>`: a `checkpoint` model on the base's timm architecture.

    Predicted at its own resolution only (`resolutions: [r]`): FixRes at r is evaluated at r.
    The base's preprocessing overrides (mean/std/interpolation) carry over; the input size is r.
    """
    entry = config["models"][base]
    if "timm" not in entry:
        raise ValueError(
            f"fixres.models: {base!r} has no `timm:` architecture (loader {entry.get('loader')!r}); "
            "FixRes checkpoints are reloaded into a timm architecture"
        )
    preprocessing = dict(entry.get("preprocessing") or {})
    preprocessing["input_size"] = int(resolution)
    preprocessing["crop_pct"] = int(resolution) / math.floor(1.15 * int(resolution))
    out = {
        "loader": "checkpoint",
        "timm": entry["timm"],
        "checkpoint": f"results/checkpoints/{fixres_name(base, resolution)}.pth",
        "group": entry.get("group", "?"),
        "preprocessing": preprocessing,
        "resolutions": [int(resolution)],
        "fixres_of": base,
        "fixres_resolution": int(resolution),
    }
    for key in ("pretraining_data", "params", "batch_size"):
        if key in entry:
            out[key] = entry[key]
    return out


def fixres_entries(config: dict) -> dict[str, dict]:
    return {fixres_name(base, r): fixres_entry(config, base, r) for base, r in fixres_pairs(config)}
