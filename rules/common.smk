import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from oodbench import plan
from oodbench.finetune import settings as fixres_settings
from oodbench.models.registry import ModelLoadError
from oodbench.synthetic import workflow as synthetic_workflow

validate(config, schema="../schemas/config.schema.yaml")

# HDF5's file locks fail on NFS/Lustre (h5py#1082); jobs inherit this, local or under SLURM.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

# FixRes models (`<model>+fixres<r>`) are checkpoint models on the finetune rule's output.
FIXRES_PAIRS = fixres_settings.fixres_pairs(config)
FIXRES_MODELS = fixres_settings.fixres_entries(config)
config["models"].update(FIXRES_MODELS)

MODELS = plan.enabled(config.get("models"))
BASE_MODELS = [m for m in MODELS if m not in FIXRES_MODELS]
DATASETS = plan.enabled(config.get("datasets"))
DEMO_DATASETS = [name for name, d in DATASETS.items() if d["kind"].startswith("demo_")]
CORRUPTION_DATASETS = [
    name
    for name, d in DATASETS.items()
    if d["kind"] in ("imagenet_c", "imagenet_c_generated", "demo_corrupted")
]
GRID = plan.prediction_grid(config)
MISSING_CHECKPOINTS = plan.missing_checkpoints(config)
DRY_RUN_WARNED = set()  # models and folders already warned about in a dry-run
SYNTHETIC = config.get("synthetic", {})
FIXRES_FIGURES = [
    "fig4_fixres_robustness",
    "fig10_fixres_all",
    "fig11_accuracy_vs_resolution_fixres",
]
ANALYSIS_FIGURES = [
    "fig1_metric_correlation",
    "fig2_transfer_robustness",
    "fig7a_residual_pca",
    "fig8_informativeness",
]


def _alternatives(names):
    """Regex matching exactly these names (a never-matching one when the list is empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


wildcard_constraints:
    model=_alternatives(MODELS),
    dataset=_alternatives(DATASETS),
    demo_dataset=_alternatives(DEMO_DATASETS),
    corruption_dataset=_alternatives(CORRUPTION_DATASETS),
    resolution=r"default|\d+",


if (
    workflow.local_exec
    and not workflow.remote_exec
    and "gpu" not in workflow.global_resources
):
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
    outputs += get_corruption_error_scores(None)
    outputs.append("results/metrics.csv")
    if config.get("figures", {}).get("accuracy_vs_resolution", True) and GRID:
        outputs += expand(
            "results/figures/accuracy_vs_resolution.{ext}", ext=["pdf", "png"]
        )
    if FIXRES_PAIRS:
        outputs += expand(
            "results/figures/{figure}.{ext}", figure=FIXRES_FIGURES, ext=["pdf", "png"]
        )
    if SYNTHETIC:
        outputs += synthetic_workflow.figure_outputs()
    if config.get("analysis") is not None or config.get("external_results"):
        outputs += expand(
            "results/figures/{figure}.{ext}",
            figure=ANALYSIS_FIGURES,
            ext=["pdf", "png"],
        )
        outputs.append("results/analysis/regression.json")
    return outputs


def get_external_tables(wildcards):
    return [entry["path"] for entry in config.get("external_results", [])]


def get_corruption_error_scores(wildcards):
    """mCE rows per (model, resolution) of every corruption dataset."""
    return [
        f"results/scores/{model}/{dataset}/{resolution}.mce.csv"
        for model, dataset, resolution in GRID
        if dataset in CORRUPTION_DATASETS
    ]


def get_clean_scores(wildcards):
    """The clean dataset's scores give relative mCE; none configured → plain mCE only."""
    clean = DATASETS[wildcards.corruption_dataset].get("clean_dataset")
    if clean is None:
        return []
    if clean not in DATASETS:
        raise WorkflowError(
            f"datasets.{wildcards.corruption_dataset}.clean_dataset: {clean!r} is not an enabled dataset"
        )
    return [f"results/scores/{wildcards.model}/{clean}/{wildcards.resolution}.csv"]


def get_alexnet_errors(wildcards):
    return DATASETS[wildcards.corruption_dataset].get("alexnet", "precise")


def get_dataset_kind(wildcards):
    return DATASETS[wildcards.demo_dataset]["kind"]


def get_preprocessing(wildcards):
    try:
        return plan.preprocessing(
            config, wildcards.model, wildcards.dataset, wildcards.resolution
        )
    except (ModelLoadError, ValueError) as err:
        raise WorkflowError(str(err)) from err


def get_checkpoint(wildcards):
    """The checkpoint file is an input (edits rerun its jobs); a missing one stops the run
    before any job starts, except in a dry-run, which only warns so the grid can be listed.
    """
    model = wildcards.model
    entry = config["models"][model]
    if not entry.get("checkpoint"):
        return []
    if model not in MISSING_CHECKPOINTS:
        return [entry["checkpoint"]]
    stop_unless_dry_run(
        model,
        MISSING_CHECKPOINTS[model],
        f"{len(MISSING_CHECKPOINTS)} requested model(s) lack their checkpoint file:\n  "
        + "\n  ".join(MISSING_CHECKPOINTS.values())
        + "\nPlace the files, set `enabled: false` on those models, or target a subset.",
    )
    return []


def stop_unless_dry_run(key, warning, error):
    """A missing user-supplied input stops a real run before any job starts; a dry-run warns
    once per `key` instead, so the whole DAG can still be listed."""
    if not workflow.dryrun:
        raise WorkflowError(error)
    if key not in DRY_RUN_WARNED:
        DRY_RUN_WARNED.add(key)
        logger.warning(f"oodbench (dry-run only): {warning}")


def get_predict_params(wildcards):
    prep = get_preprocessing(wildcards)
    return {
        "entry": MODELS[wildcards.model],
        # lists, not tuples: the params Snakemake records stay as they were
        "preprocessing": dict(asdict(prep), mean=list(prep.mean), std=list(prep.std)),
        "batch_size": plan.batch_size(config, wildcards.model),
    }


def get_all_scores(wildcards):
    scores = expand(
        "results/scores/{model}/{dataset}/{resolution}.csv",
        zip,
        model=[g[0] for g in GRID],
        dataset=[g[1] for g in GRID],
        resolution=[g[2] for g in GRID],
    )
    return scores + get_corruption_error_scores(wildcards)


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


# --- FixRes (rules/finetune.smk) -------------------------------------------------------


def get_fixres_pair(wildcards):
    pair = (wildcards.model, int(wildcards.res))
    if pair not in FIXRES_PAIRS:
        raise WorkflowError(
            f"{wildcards.model}+fixres{wildcards.res} is not requested: add the model to "
            "fixres.models and the resolution to fixres.resolutions"
        )
    return pair


def get_fixres_train_manifest(wildcards):
    get_fixres_pair(wildcards)
    return f"data/{fixres_settings.fixres_block(config)['train_dataset']}/manifest.csv"


def get_fixres_base_entry(wildcards):
    return config["models"][wildcards.model]


def get_fixres_settings(wildcards):
    get_fixres_pair(wildcards)
    return fixres_settings.job_settings(config, wildcards.model)


def get_fixres_plot_models():
    return BASE_MODELS


# --- synthetic factor-of-variation sets (rules/synthetic.smk) ----------------------------


def get_synthetic_settings(job):
    """Params function: only the part of the synthetic block that the `job` rule reads (see
    rule_settings), so that editing another part (a figure option, a model-grid label) does
    not rerun it."""

    def settings(wildcards):
        factor = wildcards.get("factor") or wildcards.get("variant")
        return synthetic_workflow.rule_settings(SYNTHETIC, job, factor)

    return settings


def get_synthetic_object_inputs(wildcards):
    user_keys = synthetic_workflow.USER_OBJECT_INPUTS
    return {
        name: path
        for name, path in synthetic_workflow.object_inputs(SYNTHETIC).items()
        if name not in user_keys or user_supplied(user_keys[name], path)
    }


def get_synthetic_background_inputs(wildcards):
    return [
        path
        for path in synthetic_workflow.background_inputs(SYNTHETIC)
        if user_supplied(synthetic_workflow.USER_BACKGROUNDS_KEY, path)
    ]


def user_supplied(key, path):
    """A file or folder the user provides (cut-outs, class map, backgrounds): a dry-run
    only warns when it is missing, so the DAG can be listed; a real run stops first."""
    if Path(path).exists():
        return True
    message = (
        f"{key}: {path} does not exist; put your files there (README: Synthetic factors of "
        "variation) or point the config at them"
    )
    stop_unless_dry_run(path, message, message)
    return False


def get_synthetic_num_shards(wildcards):
    return synthetic_workflow.num_shards(SYNTHETIC)


def get_synthetic_shards(wildcards):
    return synthetic_workflow.shard_dirs(SYNTHETIC, wildcards.factor)


def get_synthetic_analysis_manifest(wildcards):
    return synthetic_workflow.analysis_manifest(wildcards.variant)


def get_synthetic_analysis_logits(wildcards):
    return sorted(
        synthetic_workflow.analysis_logits(SYNTHETIC, wildcards.variant).values()
    )


def get_synthetic_analysis_logits_by_model(wildcards):
    return synthetic_workflow.analysis_logits(SYNTHETIC, wildcards.variant)


def remove_caches():
    """onsuccess: every logits file exists, so the uint8 caches are no longer needed."""
    if not config.get("predict", {}).get("keep_cache", False):
        shutil.rmtree(
            config.get("predict", {}).get("cache_dir", "results/cache"),
            ignore_errors=True,
        )
