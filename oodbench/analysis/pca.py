"""PCA of the standardised residuals of the robustness metrics (Appendix A.1, figure 7a).

Observed: explained-variance fractions of the residuals after regressing every metric on
ImageNet accuracy, each residual column scaled to unit variance.
Null: every metric's residuals permuted independently across models (destroys the
correlation between metrics, keeps each metric's distribution).
Uncertainty: bootstrap over models; each sample refits the regressions before the PCA.
A component is significant when its observed fraction exceeds the null's 97.5th percentile.
All samples are processed in chunks of stacked matrices (batched matmul + eigvalsh).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oodbench.analysis.regression import fit_on_baseline

CHUNK = 128


def standardise(residuals: np.ndarray) -> np.ndarray:
    """Scale every column (axis -2 = models) to unit variance; constant columns become 0."""
    centred = residuals - residuals.mean(axis=-2, keepdims=True)
    sd = centred.std(axis=-2, ddof=1, keepdims=True)
    return centred / np.where(sd > 0, sd, np.inf)


def explained_fractions(z: np.ndarray) -> np.ndarray:
    """Explained-variance fractions, descending, for stacked matrices z (..., n, p).

    Uses the smaller of the p x p covariance and the n x n Gram matrix (same non-zero
    eigenvalues). Returns (..., min(n, p)); rows with no variance at all are NaN.
    """
    n, p = z.shape[-2:]
    gram = np.swapaxes(z, -1, -2) @ z if p <= n else z @ np.swapaxes(z, -1, -2)
    eig = np.linalg.eigvalsh(gram)[..., ::-1]
    eig = np.clip(eig, 0.0, None)
    total = eig.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, eig / total, np.nan)


def permutation_null(z: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Explained fractions of ``n_permutations`` column-wise permutations of z (n, p)."""
    out = []
    for start in range(0, n_permutations, CHUNK):
        size = min(CHUNK, n_permutations - start)
        stacked = np.broadcast_to(z, (size, *z.shape))
        out.append(explained_fractions(rng.permuted(stacked, axis=1)))
    return np.concatenate(out) if out else np.empty((0, min(z.shape)))


def bootstrap_fractions(
    x: np.ndarray, y: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    """Explained fractions of the residual PCA on bootstrap samples of the models."""
    n = len(x)
    out = []
    for start in range(0, n_bootstrap, CHUNK):
        size = min(CHUNK, n_bootstrap - start)
        idx = rng.integers(0, n, size=(size, n))
        residuals = fit_on_baseline(x[idx], y[idx])["residuals"]
        out.append(explained_fractions(standardise(residuals)))
    return np.concatenate(out) if out else np.empty((0, min(n, y.shape[1])))


def residual_pca(
    baseline: np.ndarray,
    metrics: np.ndarray,
    n_components: int,
    n_permutations: int,
    n_bootstrap: int,
    seed: int,
) -> tuple[pd.DataFrame, dict]:
    """Table of the first components: observed, bootstrap CI, null band, significance.

    baseline: (n,) ImageNet accuracy per model; metrics: (n, p) robustness metrics.
    """
    from threadpoolctl import threadpool_limits

    rng_null, rng_boot = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    baseline, metrics = np.asarray(baseline, float), np.asarray(metrics, float)
    z = standardise(fit_on_baseline(baseline, metrics)["residuals"])
    # Many small stacked products: multi-threaded BLAS only adds contention (10x slower on
    # a busy 2-core machine, measured), so run single-threaded.
    with threadpool_limits(limits=1):
        observed = explained_fractions(z)
        null = permutation_null(z, n_permutations, rng_null)
        boot = bootstrap_fractions(baseline, metrics, n_bootstrap, rng_boot)
    k = min(n_components, observed.shape[-1])
    with np.errstate(invalid="ignore"):
        null_low, null_median, null_high = np.nanpercentile(null[:, :k], [2.5, 50, 97.5], axis=0)
        ci_low, ci_high = np.nanpercentile(boot[:, :k], [2.5, 97.5], axis=0)
    p_value = (1 + (null[:, :k] >= observed[:k]).sum(axis=0)) / (1 + len(null))
    table = pd.DataFrame(
        {
            "component": np.arange(1, k + 1),
            "explained": observed[:k],
            "ci_low": ci_low,
            "ci_high": ci_high,
            "null_low": null_low,
            "null_median": null_median,
            "null_high": null_high,
            "p_value": p_value,
            "significant": observed[:k] > null_high,
        }
    )
    # Components count as significant only up to the first one that is not.
    leading = int(np.argmin(np.append(table["significant"].to_numpy(), False)))
    summary = {
        "n_significant_components": leading,
        "explained_pc1": float(observed[0]) if k else None,
        "n_permutations": n_permutations,
        "n_bootstrap": n_bootstrap,
        "null_band": "2.5-97.5 percentiles of the permutation null",
        "ci": "2.5-97.5 percentiles of the bootstrap",
    }
    return table, summary
