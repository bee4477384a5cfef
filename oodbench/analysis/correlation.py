"""Spearman rank correlation between all metrics (figure 1 left) and its summary numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from oodbench.analysis.table import AnalysisData, rankdata_columns


def spearman_matrix(values: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho between columns (average ranks for ties; NaN for a constant column)."""
    ranks = rankdata_columns(values.to_numpy(dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = ranks - ranks.mean(axis=0)
        norms = np.sqrt((centred**2).sum(axis=0))
        rho = (centred.T @ centred) / np.outer(norms, norms)
    np.fill_diagonal(rho, 1.0)
    return pd.DataFrame(rho, index=values.columns, columns=values.columns)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    frame = pd.DataFrame({"x": x, "y": y})
    return float(spearman_matrix(frame).iloc[0, 1])


def correlation_summary(data: AnalysisData, rho: pd.DataFrame) -> dict:
    """Median off-diagonal rho over baseline + robustness metrics, and rho with the baseline."""
    metrics = [data.baseline, *data.robustness]
    block = rho.loc[metrics, metrics].to_numpy()
    off_diagonal = block[~np.eye(len(metrics), dtype=bool)]
    with_baseline = rho.loc[data.robustness, data.baseline].to_numpy()

    def stat(fn, a):
        a = a[np.isfinite(a)]
        return float(fn(a)) if a.size else None

    return {
        "median_rho_between_metrics": stat(np.median, off_diagonal),
        "median_rho_with_baseline": stat(np.median, with_baseline),
        "min_rho_with_baseline": stat(np.min, with_baseline),
        "min_rho_with_baseline_metric": (
            data.robustness[int(np.nanargmin(with_baseline))]
            if np.isfinite(with_baseline).any()
            else None
        ),
    }
