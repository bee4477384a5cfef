"""Scores from logits (docs/contracts.md §3): one mechanism for every class mapping.

Dataset class k scores the max over the logits of its member ImageNet indices; the prediction
is the argmax over dataset classes. Plain ImageNet (1000 singletons), a subset (ImageNet-A's
200 singletons) and superclasses (video sets, ObjectNet, the demo) are all this one rule, which
is imagenet-testbed's `class_sublist` + `merge_op='max'`.

Probabilities (for NLL and ECE) come from a softmax over the union of member indices — the
dataset's label set, renormalised as robustness_metrics' `use_dataset_labelset` does — and a
dataset class's probability is the sum over its members.

The score-file and metrics-table contracts (DESIGN §3, §4) live here too: their columns, the
``source`` of the pipeline's own rows, and the checked reader every consumer of
results/metrics.csv uses. This module stays free of torch and plotting imports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.datasets.manifest import class_members, label_matrix

SUBSET_COLUMNS = (("corruption", "severity"), ("corruption",), ("severity",))
ECE_BINS = 15

# DESIGN §3: one score file's rows.
SCORE_COLUMNS = ["model", "dataset", "resolution", "metric", "subset", "value", "n"]
# DESIGN §4: the metrics table = score rows + per-model metadata + per-row ``source``.
MODEL_METADATA_COLUMNS = ["group", "params", "pretraining_data"]
METADATA_COLUMNS = MODEL_METADATA_COLUMNS + ["source"]
METRICS_COLUMNS = SCORE_COLUMNS + METADATA_COLUMNS
# At most one row per key in a metrics table.
KEY_COLUMNS = ["model", "dataset", "resolution", "metric", "subset"]
# ``source`` of the rows the pipeline scored itself (external tables carry their own name).
PIPELINE_SOURCE = "pipeline"
_TEXT_DTYPES = {"model": str, "dataset": str, "resolution": str, "metric": str, "subset": str}


class MetricsTableError(ValueError):
    """A metrics table that does not follow the contract (DESIGN §4)."""


def read_metrics(path: str | Path) -> pd.DataFrame:
    """Read a metrics table (results/metrics.csv or the merged table) and check its columns."""
    table = pd.read_csv(path, dtype=_TEXT_DTYPES)
    return check_metrics_table(table, str(path))


def check_metrics_table(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """The contract's columns in order; resolution and subset as text (no subset = ``all``),
    numeric values. A missing column is an error naming it and ``where``."""
    missing = [c for c in METRICS_COLUMNS if c not in table.columns]
    if missing:
        raise MetricsTableError(
            f"{where}: missing column(s) {missing}; a metrics table needs {METRICS_COLUMNS}"
        )
    table = table[METRICS_COLUMNS].copy()
    table["resolution"] = table["resolution"].astype(str)
    table["subset"] = table["subset"].fillna("all").astype(str)
    table["value"] = pd.to_numeric(table["value"], errors="raise")
    return table


def class_scores(logits: np.ndarray, members: list[list[int]]) -> np.ndarray:
    """N × K: max over each class's member logits."""
    if all(len(m) == 1 for m in members):
        return logits[:, [m[0] for m in members]]
    scores = np.empty((logits.shape[0], len(members)), dtype=logits.dtype)
    for k, member in enumerate(members):
        # a class without ImageNet members (YTBB's cow, toilet, ...) is never predicted
        scores[:, k] = logits[:, member].max(axis=1) if member else -np.inf
    return scores


def class_probabilities(logits: np.ndarray, members: list[list[int]]) -> np.ndarray:
    """N × K: softmax over the label set's ImageNet indices, summed per class."""
    union = sorted({i for m in members for i in m})
    position = {index: j for j, index in enumerate(union)}
    restricted = logits[:, union].astype(np.float64)
    restricted -= restricted.max(axis=1, keepdims=True)
    probs = np.exp(restricted)
    probs /= probs.sum(axis=1, keepdims=True)
    out = np.zeros((logits.shape[0], len(members)))
    for k, member in enumerate(members):
        out[:, k] = probs[:, [position[i] for i in member]].sum(axis=1)
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Equal-width bins over (0, 1]; Σ_b |acc_b − conf_b| · n_b / N (Guo et al. 2017)."""
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct.astype(float), minlength=bins)
    return float(np.abs(acc_sum - conf_sum).sum() / len(confidence))


def top1_outcomes(logits: np.ndarray, members: list[list[int]], truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the predicted dataset class (argmax of ``class_scores``) and whether it is one
    of the image's true classes (``truth``: N × K boolean, from ``label_matrix``)."""
    prediction = class_scores(logits, members).argmax(axis=1)
    return prediction, truth[np.arange(len(prediction)), prediction]


def per_image_outcomes(logits: np.ndarray, manifest: pd.DataFrame, classes: dict) -> pd.DataFrame:
    """One row per image: prediction, correctness, confidence and NLL of the true label set."""
    members = class_members(classes)
    truth = label_matrix(manifest["label"], len(members))
    prediction, correct = top1_outcomes(logits, members, truth)
    probs = class_probabilities(logits, members)
    rows = np.arange(len(prediction))
    true_prob = np.where(truth, probs, 0.0).sum(axis=1)
    return pd.DataFrame(
        {
            "prediction": prediction,
            "correct": correct,
            "confidence": probs[rows, prediction],
            "nll": -np.log(np.clip(true_prob, 1e-12, None)),
        },
        index=manifest.index,
    )


def pm_k_accuracy(outcomes: pd.DataFrame, manifest: pd.DataFrame, k: int) -> tuple[float, int]:
    """Shankar et al.'s pm-k: an anchor counts if it and every frame within ±k frames is correct."""
    offsets = manifest["frame_offset"].astype(int).abs()
    frame = pd.DataFrame({"anchor": manifest["anchor_id"].astype(str), "correct": outcomes["correct"]})
    within = frame[offsets <= k]
    anchors = frame.loc[offsets == 0, "anchor"]
    per_anchor = within.groupby("anchor")["correct"].all().reindex(anchors.unique())
    if per_anchor.isna().any():
        missing = per_anchor.index[per_anchor.isna()][:3].tolist()
        raise ValueError(f"anchors without an offset-0 frame: {missing}")
    return float(per_anchor.mean()), int(len(per_anchor))


def _rows_for(outcomes: pd.DataFrame, subset: str) -> list[tuple[str, str, float, int]]:
    n = len(outcomes)
    return [
        ("top1", subset, float(outcomes["correct"].mean()), n),
        ("ece", subset, expected_calibration_error(outcomes["confidence"].to_numpy(), outcomes["correct"].to_numpy()), n),
        ("nll", subset, float(outcomes["nll"].mean()), n),
    ]


def subset_name(columns: tuple[str, ...], values) -> str:
    values = values if isinstance(values, tuple) else (values,)
    return ",".join(f"{c}={v}" for c, v in zip(columns, values))


def score_table(logits: np.ndarray, manifest: pd.DataFrame, classes: dict, pm_ks=(0, 10)) -> pd.DataFrame:
    """All scores of one logits file as tidy (metric, subset, value, n) rows."""
    outcomes = per_image_outcomes(logits, manifest, classes)
    rows = _rows_for(outcomes, "all")
    for columns in SUBSET_COLUMNS:
        if all(c in manifest.columns for c in columns):
            for values, group in outcomes.groupby([manifest[c] for c in columns], sort=True):
                rows += _rows_for(group, subset_name(columns, values))
    if {"anchor_id", "frame_offset"} <= set(manifest.columns):
        for k in pm_ks:
            value, n = pm_k_accuracy(outcomes, manifest, k)
            rows.append((f"pm{k}", "all", value, n))
    return pd.DataFrame(rows, columns=["metric", "subset", "value", "n"])
