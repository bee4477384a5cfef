import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from oodbench import plan
from oodbench.models.registry import ModelLoadError

validate(config, schema="../schemas/config.schema.yaml")

# HDF5's file locks fail on NFS/Lustre (h5py#1082); jobs inherit this, local or under SLURM.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

MODELS = plan.enabled(config.get("models"))
DATASETS = plan.enabled(config.get("datasets"))
DEMO_DATASETS = [name for name, d in DATASETS.items() if d["kind"].startswith("demo_")]
GRID = plan.prediction_grid(config)
MISSING_CHECKPOINTS = plan.missing_checkpoints(config)


def _alternatives(names):
    """Regex matching exactly these names (a never-matching one when the list is empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


wildcard_constraints:
    model=_alternatives(MODELS),
    dataset=_alternatives(DATASETS),
    demo_dataset=_alternatives(DEMO_DATASETS),
    resolution=r"default|\d+",
    prep=r"\d+c\d+r-(bicubic|bilinear|nearest)-(tensor|pil)(-b\d+)?",


if workflow.local_exec and "gpu" not in workflow.global_resources:
    logger.warning(
        "oodbench: no --resources gpu=N given, so GPU concurrency is unlimited: every predict "
        "job may start at once. On a GPU machine run e.g. `snakemake --cores all --resources gpu=4`."
    )


def get_final_outputs():
    outputs = expand(
        "results/scores/{model}/{dataset}/{resolution}.csv",
        zip,
        model=[g[0] for g in GRID],
        dataset=[g[1] for g in GRID],
        resolution=[g[2] for g in GRID],
    )
    outputs.append("results/metrics.csv")
    if config.get("figures", {}).get("accuracy_vs_resolution", True) and GRID:
        outputs += expand(
            "results/figures/accuracy_vs_resolution.{ext}", ext=["pdf", "png"]
        )
    return outputs


def get_dataset_kind(wildcards):
    return DATASETS[wildcards.demo_dataset]["kind"]


def get_preprocessing(wildcards):
    try:
        return plan.preprocessing(
            config, wildcards.model, wildcards.dataset, wildcards.resolution
        )
    except (ModelLoadError, ValueError) as err:
        raise WorkflowError(str(err)) from err


def get_cache(wildcards):
    key = get_preprocessing(wildcards).cache_key
    return f"results/cache/{wildcards.dataset}/{key}.npy"


def get_checkpoint(wildcards):
    """The checkpoint file is an input (edits rerun predict); a missing one stops the run
    before any job starts, except in a dry-run, which only warns so the grid can be listed.
    """
    entry = MODELS[wildcards.model]
    if not entry.get("checkpoint"):
        return []
    if wildcards.model not in MISSING_CHECKPOINTS:
        return [entry["checkpoint"]]
    if workflow.dryrun:
        logger.warning(
            f"oodbench (dry-run only): {MISSING_CHECKPOINTS[wildcards.model]}"
        )
        return []
    raise WorkflowError(
        f"{len(MISSING_CHECKPOINTS)} requested model(s) lack their checkpoint file:\n  "
        + "\n  ".join(MISSING_CHECKPOINTS.values())
        + "\nPlace the files, set `enabled: false` on those models, or target a subset."
    )


def get_predict_params(wildcards):
    prep = get_preprocessing(wildcards)
    return {
        "entry": MODELS[wildcards.model],
        "preprocessing": dict(
            crop=prep.crop,
            resize=prep.resize,
            interpolation=prep.interpolation,
            mean=list(prep.mean),
            std=list(prep.std),
            border_crop=prep.border_crop,
            backend=prep.backend,
        ),
        "batch_size": plan.batch_size(config, wildcards.model),
    }


def get_all_scores(wildcards):
    return expand(
        "results/scores/{model}/{dataset}/{resolution}.csv",
        zip,
        model=[g[0] for g in GRID],
        dataset=[g[1] for g in GRID],
        resolution=[g[2] for g in GRID],
    )


def get_all_logits(wildcards):
    return expand(
        "results/predictions/{model}/{dataset}/{resolution}.h5",
        zip,
        model=[g[0] for g in GRID],
        dataset=[g[1] for g in GRID],
        resolution=[g[2] for g in GRID],
    )


def get_default_crops():
    return {model: plan.default_crop(config, model) for model in MODELS}


def lookup_config(path, default):
    return lookup(dpath=path, within=config, default=default)
