"""Robustness versus transfer (figure 2).

Mean robustness = mean over the robustness metrics (accuracies, fractions). Residual
robustness = mean robustness - ImageNet accuracy (the paper's definition). Correlations are
Spearman's rho across models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oodbench.analysis.correlation import spearman, spearman_matrix
from oodbench.analysis.table import AnalysisData

OVERALL = "all"


def transfer_points(data: AnalysisData) -> pd.DataFrame:
    """One row per model: group, ImageNet, mean/residual robustness, each transfer score."""
    values = data.values
    points = pd.DataFrame(index=values.index)
    points["group"] = data.groups  # prepare() aligned it with values
    points["imagenet"] = values[data.baseline]
    robust = values[data.robustness].mean(axis=1) if data.robustness else np.nan
    points["mean_robustness"] = robust
    points["residual_robustness"] = points["mean_robustness"] - points["imagenet"]
    for group, column in data.transfer.items():
        points[f"transfer_{group}"] = values[column]
    return points.reset_index()


def overall_transfer_group(data: AnalysisData) -> str | None:
    """The transfer group used as "the" transfer score: ``all`` if present, else the first."""
    if OVERALL in data.transfer:
        return OVERALL
    return next(iter(data.transfer), None)


def transfer_summary(data: AnalysisData, points: pd.DataFrame) -> dict:
    overall = overall_transfer_group(data)
    if overall is None:
        return {"transfer_group": None}
    t = points[f"transfer_{overall}"].to_numpy()
    return {
        "transfer_group": overall,
        "rho_transfer_imagenet": spearman(t, points["imagenet"].to_numpy()),
        "rho_transfer_mean_robustness": spearman(t, points["mean_robustness"].to_numpy()),
        "rho_transfer_residual_robustness": spearman(t, points["residual_robustness"].to_numpy()),
    }


def transfer_correlations(data: AnalysisData) -> pd.DataFrame:
    """Spearman's rho: rows = transfer groups, columns = ImageNet + each robustness metric."""
    if not data.transfer:
        return pd.DataFrame()
    metrics = [data.baseline, *data.robustness]
    groups = list(data.transfer)
    frame = pd.concat(
        [data.values[metrics], data.values[list(data.transfer.values())].set_axis(groups, axis=1)],
        axis=1,
    )
    rho = spearman_matrix(frame)
    table = rho.loc[groups, metrics]
    table.index.name = "transfer_group"
    return table
