"""Linear regression of every robustness metric on ImageNet accuracy (one covariate).

All metrics are fitted at once in closed form; ``fit_on_baseline`` also accepts a leading
batch axis (bootstrap samples), which the residual PCA uses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oodbench.analysis.table import AnalysisData


def fit_on_baseline(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Least squares y[..., :, j] = a_j + b_j x[..., :] for every column j.

    x: (..., n), y: (..., n, p). Returns slope, intercept, r2 (..., p) and residuals (..., n, p).
    R^2 is NaN for a constant metric (no variance to explain).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xc = x - x.mean(axis=-1, keepdims=True)
    ym = y.mean(axis=-2, keepdims=True)
    yc = y - ym
    sxx = (xc**2).sum(axis=-1)[..., None]
    sxy = np.einsum("...n,...np->...p", xc, yc)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
    intercept = ym[..., 0, :] - slope * x.mean(axis=-1)[..., None]
    residuals = yc - xc[..., :, None] * slope[..., None, :]
    ss_res = (residuals**2).sum(axis=-2)
    ss_tot = (yc**2).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)
    return {"slope": slope, "intercept": intercept, "r2": r2, "residuals": residuals,
            "ss_res": ss_res, "ss_tot": ss_tot}


def regress_metrics(data: AnalysisData) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-metric fit table, residual matrix (models x metrics) and summary numbers."""
    x = data.values[data.baseline].to_numpy()
    y = data.values[data.robustness].to_numpy()
    fit = fit_on_baseline(x, y)
    table = pd.DataFrame(
        {
            "metric": data.robustness,
            "slope": fit["slope"],
            "intercept": fit["intercept"],
            "r2": fit["r2"],
            "residual_sd": np.sqrt(fit["ss_res"] / max(len(x) - 2, 1)),
            "n": len(x),
        }
    )
    residuals = pd.DataFrame(fit["residuals"], index=data.values.index, columns=data.robustness)
    finite = np.isfinite(fit["r2"])
    ss_tot = fit["ss_tot"][finite].sum()
    summary = {
        # The paper's "75.2% of the variance is explained by ImageNet accuracy".
        "mean_r2": float(np.mean(fit["r2"][finite])) if finite.any() else None,
        "median_r2": float(np.median(fit["r2"][finite])) if finite.any() else None,
        # Variance-weighted alternative: explained share of the pooled sum of squares.
        "pooled_r2": float(1 - fit["ss_res"][finite].sum() / ss_tot) if ss_tot > 0 else None,
        "min_r2": float(np.min(fit["r2"][finite])) if finite.any() else None,
    }
    return table, residuals, summary
