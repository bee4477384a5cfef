"""Accuracy per factor value, normalised scores and scale differences (Figures 5, 6, 13-17).

For one factor variant (``size``, ``rotation``, ``location``, or ``location_50`` / ``location_75``
= location images with at least 50 / 75 % of the object visible):

1. per-image correctness from the logits (contract §2): the max over each class's member logits,
   argmax over classes, compared with the manifest label (``oodbench.metrics``);
2. accuracy per factor value per model: the mean correctness over the images of each group
   (``group_by`` in the config: ``area`` for size, ``angle`` for rotation -- averaged over the four
   areas -- and ``x, y`` for location), as robustness_metrics' synthetic metrics do;
3. normalised score per model: accuracy divided by its ``normalise_quantile`` over the groups --
   1.0 = the best value (size, rotation), 0.95 = the 95th percentile (location; numpy's linear
   interpolation);
4. the model grid (config ``synthetic.model_grid``: panels, e.g. one per architecture, whose rows
   grow in pre-training data or model size): each row's normalised score minus the first row's of
   its panel.

The output is one tidy table: ``panel, panel_title, row, row_label, model, variant, area, x, y,
angle, accuracy, n, normalised, difference`` (group columns not grouped on are empty; the first
row of each panel has an empty ``difference``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from oodbench.datasets.manifest import class_members, label_matrix, manifest_digest, read_classes, read_manifest
from oodbench.logits_file import read_logits
from oodbench.metrics import top1_outcomes
from oodbench.synthetic.grid import GROUP_COLUMNS, FactorSpec, factor_specs

VARIANT_PATTERN = re.compile(r"^(?P<factor>[a-z][a-z0-9]*)(?:_(?P<percent>\d{1,3}))?$")
OUTPUT_COLUMNS = [
    "panel", "panel_title", "row", "row_label", "model", "variant", *GROUP_COLUMNS,
    "accuracy", "n", "normalised", "difference",
]


class AnalysisError(ValueError):
    """Inconsistent inputs to the synthetic analysis; the message names the file or key."""


def parse_variant(variant: str) -> tuple[str, float | None]:
    """``location_75`` -> (``location``, 0.75); ``size`` -> (``size``, None)."""
    match = VARIANT_PATTERN.match(variant)
    if not match:
        raise AnalysisError(f"synthetic analysis variant {variant!r}: expected <factor> or <factor>_<percent>")
    percent = match.group("percent")
    return match.group("factor"), (int(percent) / 100.0 if percent is not None else None)


def model_grid(synthetic: Mapping) -> pd.DataFrame:
    """``panel, panel_title, row, row_label, model`` from ``synthetic.model_grid``."""
    panels = synthetic.get("model_grid")
    if not isinstance(panels, Sequence) or not panels:
        raise AnalysisError("synthetic.model_grid: expected a list of panels {title, rows: [{label, model}]}")
    records = []
    for p, panel in enumerate(panels):
        rows = panel.get("rows") if isinstance(panel, Mapping) else None
        if not rows:
            raise AnalysisError(f"synthetic.model_grid[{p}]: needs a title and a non-empty list 'rows'")
        for r, row in enumerate(rows):
            if "model" not in row:
                raise AnalysisError(f"synthetic.model_grid[{p}].rows[{r}]: missing key 'model'")
            records.append((p, str(panel.get("title", f"panel {p}")), r, str(row.get("label", row["model"])), str(row["model"])))
    return pd.DataFrame(records, columns=["panel", "panel_title", "row", "row_label", "model"])


class ManifestTruth(NamedTuple):
    """What every model's correctness needs from one manifest, read once per analysis."""

    manifest: pd.DataFrame
    members: list[list[int]]
    truth: np.ndarray  # N x K boolean (label_matrix)
    digest: str


def read_manifest_truth(manifest_path: str | os.PathLike) -> ManifestTruth:
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path, check_files=False)
    members = class_members(read_classes(manifest_path.parent / "classes.json"))
    truth = label_matrix(manifest["label"], len(members))
    return ManifestTruth(manifest, members, truth, manifest_digest(manifest_path))


def image_correctness(inputs: ManifestTruth, logits_path: str | os.PathLike) -> np.ndarray:
    """Boolean per manifest row: is the top class (max over member logits) a correct label?
    Logits from another manifest, or with another row count, are refused (``read_logits``)."""
    logits, _ = read_logits(Path(logits_path), inputs.digest, expected_rows=len(inputs.manifest))
    return top1_outcomes(logits, inputs.members, inputs.truth)[1]


def accuracy_by_group(
    manifest: pd.DataFrame, correct: Mapping[str, np.ndarray], group_by: Sequence[str], min_visible: float | None = None
) -> pd.DataFrame:
    """``model, <group_by>, accuracy, n``: mean correctness per factor value per model."""
    keep = np.ones(len(manifest), dtype=bool)
    if min_visible is not None:
        keep = manifest["visible_fraction"].to_numpy(float) >= min_visible - 1e-9
    if not keep.any():
        raise AnalysisError(f"no image has a visible fraction >= {min_visible}")
    groups = manifest.loc[keep, list(group_by)].reset_index(drop=True)
    tables = []
    for model, values in correct.items():
        values = np.asarray(values, dtype=bool)
        if len(values) != len(manifest):
            raise AnalysisError(f"model {model!r}: {len(values)} correctness values for {len(manifest)} manifest rows")
        frame = groups.assign(correct=values[keep].astype(float))
        table = frame.groupby(list(group_by), sort=True)["correct"].agg(accuracy="mean", n="size").reset_index()
        tables.append(table.assign(model=model))
    return pd.concat(tables, ignore_index=True)


def normalise_by_quantile(accuracy: pd.DataFrame, quantile: float) -> pd.Series:
    """Each model's accuracies divided by its ``quantile`` over groups (1.0 = the best group)."""
    reference = accuracy.groupby("model")["accuracy"].transform(lambda values: np.quantile(values.to_numpy(), quantile))
    return accuracy["accuracy"] / reference.where(reference > 0)


def differences_to_first_row(table: pd.DataFrame, group_by: Sequence[str]) -> pd.Series:
    """Normalised score minus that of the panel's first row at the same factor value."""
    first = table[table["row"] == 0][["panel", *group_by, "normalised"]].rename(columns={"normalised": "first"})
    merged = table[["panel", "row", *group_by, "normalised"]].merge(first, on=["panel", *group_by], how="left")
    difference = merged["normalised"] - merged["first"]
    difference[merged["row"].to_numpy() == 0] = np.nan
    return pd.Series(difference.to_numpy(), index=table.index)


def analyse_variant(
    manifest: pd.DataFrame, correct: Mapping[str, np.ndarray], spec: FactorSpec, grid: pd.DataFrame,
    variant: str, min_visible: float | None,
) -> pd.DataFrame:
    """The tidy output table of one variant (see module doc)."""
    accuracy = accuracy_by_group(manifest, correct, spec.group_by, min_visible)
    accuracy["normalised"] = normalise_by_quantile(accuracy, spec.normalise_quantile)
    table = grid.merge(accuracy, on="model", how="left")
    table["difference"] = differences_to_first_row(table, spec.group_by)
    table["variant"] = variant
    for column in GROUP_COLUMNS:
        if column not in spec.group_by:
            table[column] = np.nan
    return table[OUTPUT_COLUMNS].sort_values(["panel", "row", *spec.group_by], kind="mergesort").reset_index(drop=True)


def run_analysis(
    synthetic: Mapping, variant: str, manifest_path: str | os.PathLike, logits_by_model: Mapping[str, str | os.PathLike]
) -> pd.DataFrame:
    """Read the manifest and every grid model's logits; return the variant's table."""
    factor, min_visible = parse_variant(variant)
    specs = factor_specs(synthetic)
    if factor not in specs:
        raise AnalysisError(f"variant {variant!r}: synthetic.factors has no factor {factor!r}")
    grid = model_grid(synthetic)
    missing = sorted(set(grid["model"]) - set(logits_by_model))
    if missing:
        raise AnalysisError(f"variant {variant!r}: no logits given for model(s) {missing}")
    inputs = read_manifest_truth(manifest_path)
    correct = {model: image_correctness(inputs, logits_by_model[model]) for model in grid["model"].unique()}
    return analyse_variant(inputs.manifest, correct, specs[factor], grid, variant, min_visible)
