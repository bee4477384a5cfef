"""The experiment grid, derived from the config once at DAG-build time.

rules/common.smk wraps these functions; keeping them here makes them unit-testable and lets a
notebook ask "which files would the pipeline produce" without Snakemake.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from oodbench.models.registry import ModelLoadError, checkpoint_hint, pretrained_cfg
from oodbench.preprocessing import Preprocessing, resolve_preprocessing

DEFAULT_BATCH_SIZE = 256


def enabled(entries: dict | None) -> dict:
    return {name: entry for name, entry in (entries or {}).items() if entry.get("enabled", True)}


def model_resolutions(config: dict, model: str, dataset: str | None = None) -> list[str]:
    """A model's resolutions, narrowed by the dataset's own list when it has one (the synthetic
    sets are read at the models' own preprocessing only, so FixRes models skip them)."""
    entry = config["models"][model]
    resolutions = [str(r) for r in entry.get("resolutions", config.get("resolutions", ["default"]))]
    if dataset is not None and "resolutions" in config["datasets"][dataset]:
        wanted = {str(r) for r in config["datasets"][dataset]["resolutions"]}
        resolutions = [r for r in resolutions if r in wanted]
    return resolutions


def dataset_models(config: dict, dataset: str) -> list[str]:
    """All enabled models, or exactly those a dataset's `models:` list names."""
    models = enabled(config.get("models"))
    wanted = config["datasets"][dataset].get("models")
    return [m for m in models if wanted is None or m in wanted]


def prediction_grid(config: dict) -> list[tuple[str, str, str]]:
    """(model, dataset, resolution) for every logits file the config asks for."""
    return [
        (model, dataset, resolution)
        for dataset in enabled(config.get("datasets"))
        for model in dataset_models(config, dataset)
        for resolution in model_resolutions(config, model, dataset)
    ]


@lru_cache(maxsize=None)
def _cfg(model: str, entry_key: tuple) -> dict:
    return pretrained_cfg(dict(entry_key), model)


def _freeze(entry: dict) -> tuple:
    """Hashable form of a config entry, for the pretrained-cfg memo."""
    return tuple(sorted((k, _freeze(v) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v) for k, v in entry.items()))


def model_pretrained_cfg(config: dict, model: str) -> dict:
    entry = config["models"][model]
    try:
        return _cfg(model, _freeze(entry))
    except ModelLoadError:
        raise
    except Exception as err:  # a typo in a timm name must name the model, not crash the DAG build obscurely
        raise ModelLoadError(f"model {model!r}: cannot resolve its preprocessing: {err}") from err


def preprocessing(config: dict, model: str, dataset: str, resolution: str) -> Preprocessing:
    dataset_entry = config["datasets"][dataset]
    return resolve_preprocessing(
        model_pretrained_cfg(config, model),
        resolution,
        model=model,
        border_crop=int(dataset_entry.get("border_crop", 0)),
        backend=config.get("predict", {}).get("backend", "tensor"),
    )


def default_crop(config: dict, model: str) -> int:
    return int(model_pretrained_cfg(config, model)["input_size"][-1])


def batch_size(config: dict, model: str) -> int:
    return int(config["models"][model].get("batch_size", config.get("predict", {}).get("batch_size", DEFAULT_BATCH_SIZE)))


def missing_checkpoints(config: dict, models=None) -> dict[str, str]:
    """model → message, for requested checkpoint models whose file is absent."""
    missing = {}
    for name, entry in enabled(config.get("models")).items():
        if models is not None and name not in models:
            continue
        produced_by_the_dag = "fixres_of" in entry
        if entry.get("checkpoint") and not produced_by_the_dag and not Path(entry["checkpoint"]).is_file():
            missing[name] = f"models.{name}.checkpoint: {entry['checkpoint']} does not exist; {checkpoint_hint(entry)}"
    return missing
