"""Paths and inputs of the synthetic rules (rules/synthetic.smk), as plain functions of the config.

``rules/common.smk`` wraps these in ``get_*`` input functions; keeping them here makes them
importable and unit-tested.
"""

from __future__ import annotations

from collections.abc import Mapping

from oodbench.synthetic.analysis import model_grid, parse_variant

SOURCES_DIR = "data/synthetic_sources"
OBJECTS_TABLE = f"{SOURCES_DIR}/objects/objects.csv"
BACKGROUNDS_TABLE = f"{SOURCES_DIR}/backgrounds.csv"
OPENIMAGES_DIR = f"{SOURCES_DIR}/openimages"
OPENIMAGES_SELECTION = f"{OPENIMAGES_DIR}/selection.csv"
FIGURES = (
    "fig5_location", "fig6_rotation_size", "fig12_samples", "fig13_size",
    "fig14_rotation", "fig15_location", "fig16_location_50", "fig17_location_75",
)
# The analysis tables each figure draws.
FIGURE_VARIANTS = {
    "fig5_location": ["location"],
    "fig6_rotation_size": ["rotation", "size"],
    "fig13_size": ["size"],
    "fig14_rotation": ["rotation"],
    "fig15_location": ["location"],
    "fig16_location_50": ["location_50"],
    "fig17_location_75": ["location_75"],
}


def dataset_name(factor: str) -> str:
    return f"synthetic_{factor}"


def num_shards(synthetic: Mapping) -> int:
    return int(synthetic.get("shards", 1))


def shard_dirs(synthetic: Mapping, factor: str) -> list[str]:
    return [f"data/{dataset_name(factor)}.shards/{k}" for k in range(num_shards(synthetic))]


def object_inputs(synthetic: Mapping) -> dict[str, str]:
    """Named inputs of the object-preparation job: the OpenImages selection, a user folder, or none."""
    objects = synthetic["objects"]
    source = objects["source"]
    if source == "openimages":
        return {"selection": OPENIMAGES_SELECTION}
    if source == "folder":
        return {"folder": objects["folder"]["path"], "class_map": objects["folder"]["class_map"]}
    return {}


def background_inputs(synthetic: Mapping) -> list[str]:
    backgrounds = synthetic["backgrounds"]
    return [backgrounds["folder"]] if backgrounds["source"] == "folder" else []


def analysis_logits(synthetic: Mapping, variant: str) -> dict[str, str]:
    """{model: logits path} for every model of the grid, on the variant's factor dataset."""
    factor, _ = parse_variant(variant)
    resolution = str(synthetic.get("resolution", "default"))
    return {
        model: f"results/predictions/{model}/{dataset_name(factor)}/{resolution}.h5"
        for model in model_grid(synthetic)["model"].unique()
    }


def analysis_manifest(variant: str) -> str:
    factor, _ = parse_variant(variant)
    return f"data/{dataset_name(factor)}/manifest.csv"


def figure_inputs(figure: str) -> list[str]:
    """Analysis tables of a figure (Figure 12 reads manifests instead: see sample_manifests)."""
    return [f"results/analysis/synthetic_{variant}.csv" for variant in FIGURE_VARIANTS.get(figure, [])]


def sample_manifests(synthetic: Mapping) -> list[str]:
    return [f"data/{dataset_name(factor)}/.prepared" for factor in synthetic["factors"]]


def figure_outputs() -> list[str]:
    return [f"results/figures/{figure}.{ext}" for figure in FIGURES for ext in ("pdf", "png")]
