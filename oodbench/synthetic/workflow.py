"""Paths and inputs of the synthetic rules (rules/synthetic.smk), as plain functions of the config.

``rules/common.smk`` wraps these in ``get_*`` input functions; keeping them here makes them
importable and unit-tested.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from oodbench.synthetic.analysis import model_grid, parse_variant
from oodbench.synthetic.grid import GRID_KEYS
from oodbench.synthetic.sources import openimages_metadata_files

OPENIMAGES_SELECTION = "data/synthetic_sources/openimages/selection.csv"
FIGURES = (
    "fig5_location", "fig6_rotation_size", "fig12_samples", "fig13_size",
    "fig14_rotation", "fig15_location", "fig16_location_50", "fig17_location_75",
)
# Inputs of the object job that the user supplies (checked at DAG-build time), by config key.
USER_OBJECT_INPUTS = {"folder": "synthetic.objects.folder.path", "class_map": "synthetic.objects.folder.class_map"}
USER_BACKGROUNDS_KEY = "synthetic.backgrounds.folder"
# The keys of the synthetic block that the jobs read (see rule_settings): a rule's params hold
# only its own, so that editing, say, a figure option does not rerun the composition (params
# are a rerun trigger, and a rewritten manifest reruns every predict job on it).
COMPOSE_KEYS = ("canvas", "seed", "backgrounds_per_object", "area_basis", "image_format", "jpeg_quality")
# objects.openimages: read when choosing the objects / when downloading and cutting them out.
SELECT_KEYS = ("splits", "class_map", "min_predicted_iou", "max_per_class", "exclude", "drop_flags")
CUTOUT_KEYS = ("checksums", "class_map", "min_mask_pixels")


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


def _pick(mapping: Mapping, keys) -> dict:
    """The present ``keys`` of ``mapping``, deep-copied (params must not alias the config)."""
    return {key: copy.deepcopy(mapping[key]) for key in keys if key in mapping}


def rule_settings(synthetic: Mapping, rule: str, factor: str | None = None) -> dict:
    """The part of the ``synthetic:`` block that ``rule``'s job reads, in the block's own shape.

    ``rule``: ``openimages_select``, ``objects``, ``backgrounds``, ``compose`` and ``merge``
    (these two per ``factor``), ``analysis`` (per factor or variant, e.g. ``location_75``; with
    the model grid) or ``figure``.
    """
    if rule == "openimages_select":
        openimages = synthetic["objects"]["openimages"]
        picked = _pick(openimages, SELECT_KEYS)
        files = openimages_metadata_files(openimages)
        picked["urls"] = _pick(openimages["urls"], ("class_descriptions", "segmentation"))
        picked["urls"]["boxes"] = _pick(openimages["urls"]["boxes"], openimages["splits"])
        picked["checksums"] = _pick(openimages.get("checksums") or {}, files.values())
        return {"objects": {"openimages": picked}}
    if rule == "objects":
        objects = synthetic["objects"]
        picked = {"source": objects["source"]}
        if objects["source"] == "folder":
            picked["folder"] = _pick(objects["folder"], ("path", "class_map"))
        elif objects["source"] == "openimages":
            openimages = objects["openimages"]
            picked["openimages"] = {**_pick(openimages, CUTOUT_KEYS), "urls": _pick(openimages["urls"], ("masks", "image"))}
        return {"objects": picked}
    if rule == "backgrounds":
        backgrounds = synthetic["backgrounds"]
        # the demo backgrounds' noise is seeded; a folder of photos is only validated
        keys = ("canvas", "seed") if backgrounds["source"] == "demo" else ("canvas",)
        return {**_pick(synthetic, keys), "backgrounds": copy.deepcopy(backgrounds)}
    if rule in ("compose", "merge", "analysis"):
        factor, _ = parse_variant(factor)
        entry = synthetic["factors"][factor]
        if rule == "analysis":
            return {"factors": {factor: copy.deepcopy(entry)}, "model_grid": copy.deepcopy(synthetic["model_grid"])}
        keys = COMPOSE_KEYS if rule == "compose" else ("backgrounds_per_object",)
        return {**_pick(synthetic, keys), "factors": {factor: _pick(entry, GRID_KEYS)}}
    if rule == "figure":
        return _pick(synthetic, ("figures",))
    raise ValueError(f"rule_settings: unknown synthetic rule {rule!r}")


def figure_outputs() -> list[str]:
    return [f"results/figures/{figure}.{ext}" for figure in FIGURES for ext in ("pdf", "png")]
