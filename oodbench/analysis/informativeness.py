"""Informativeness of metrics (Appendix A.2, figures 1 right and 8).

Logistic-regression classifiers tell the model groups apart from ImageNet accuracy alone,
from ImageNet + one metric, and from ImageNet + two metrics. The number reported is the
gain in accuracy over the ImageNet-only classifier, mean and s.d. over bootstrap samples.

How accuracy is estimated (not training accuracy): out-of-bag. Each bootstrap sample draws
n models with replacement; every classifier is fit on the sample (draw counts as sample
weights) and scored on the models the sample did not draw (about 37% of them). The same
samples serve every feature set, so each gain is a paired difference on the same held-out
models. Samples whose out-of-bag set is empty are skipped.

Classifier: one-vs-rest L2-regularised logistic regression (penalty 1/(2C)·||w||², the
intercept unpenalised, features standardised over all models), prediction = the class with
the largest one-vs-rest score. Fits are batched: for one feature set all bootstrap samples
and classes are solved together by Newton's method (IRLS) with stacked matrix products,
because the feature sets have at most three columns.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

# Bootstrap samples per block: sized so one (samples x classes x models) float32 array stays
# around 1.6 MB (cache-resident), with fewer, larger blocks when there are few models.
BLOCK_ELEMENTS = 400_000
NEWTON_STEPS = 25
# Stop once the largest Newton step is below this (coefficients of standardised features).
# Newton converges quadratically here (measured: steps 2.6, 0.47, 0.12, 6e-3, 1.5e-5), so
# the error left after a step of 1e-2 is ~1e-4: far below what moves a decision.
TOLERANCE = 1e-2
# A class the sample did not draw has an infinitely negative intercept at the optimum (its
# coefficients vanish under the ridge); this stands in for it and is never predicted.
ABSENT_INTERCEPT = -30.0


class _Chunk:
    """One block of bootstrap samples, with the arrays every feature set reuses.

    The per-model arithmetic runs in float32 (it dominates the time); gradients and
    Hessians are accumulated by matrix products and solved in float64.
    """

    def __init__(self, labels: np.ndarray, n_classes: int, counts: np.ndarray):
        self.labels = labels
        self.counts = counts
        w = counts.astype(np.float32)[:, None, :]  # (B, 1, n)
        targets = np.eye(n_classes, dtype=np.float32)[labels].T[None]  # (1, K, n)
        # With t = tanh(z/2): p = (1 + t)/2, so w(p - y) = (w/2 - w y) + (w/2) t and
        # w p (1 - p) = (w/4)(1 - t^2). These constants make each Newton step a few passes.
        self.half_w = np.broadcast_to(0.5 * w, (len(counts), n_classes, counts.shape[1])).copy()
        self.residual_offset = 0.5 * w - w * targets
        self.quarter_w = 0.25 * w
        self.present = (w * targets).sum(axis=-1) > 0  # (B, K): class drawn in the sample
        self.held_out = counts == 0
        self.shape = (len(counts), n_classes)


def fit_ovr_logistic(
    X: np.ndarray, chunk: _Chunk, C: float, start: np.ndarray | None = None
) -> np.ndarray:
    """One-vs-rest logistic regression for many weightings of the same data at once.

    X: (n, d) design with an intercept column first. Every bootstrap sample of the chunk
    and every class is one binary problem, all solved together by Newton's method.
    Returns coefficients (B, K, d); ``start`` warm-starts them.
    """
    n, d = X.shape
    B, K = chunk.shape
    ridge = np.full(d, 1.0 / C)
    ridge[0] = 1e-8  # intercept: unpenalised (tiny ridge keeps absent classes finite)
    half_X = (0.5 * X).astype(np.float32)  # z/2 straight from the product
    Xf = X.astype(np.float32)
    outer = (Xf[:, :, None] * Xf[:, None, :]).reshape(n, d * d)
    theta = np.zeros((B, K, d)) if start is None else start.copy()
    absent = ~chunk.present
    theta[absent] = 0.0
    theta[absent, 0] = ABSENT_INTERCEPT
    for _ in range(NEWTON_STEPS):
        t = (theta.reshape(B * K, d).astype(np.float32) @ half_X.T).reshape(B, K, n)
        np.tanh(t, out=t)
        residual = np.multiply(chunk.half_w, t)
        residual += chunk.residual_offset
        grad = (residual.reshape(B * K, n) @ Xf).reshape(B, K, d).astype(float) + ridge * theta
        np.multiply(t, t, out=t)
        np.subtract(1.0, t, out=t)
        t *= chunk.quarter_w  # curvature w p (1 - p)
        hess = (t.reshape(B * K, n) @ outer).reshape(B, K, d, d).astype(float) + np.diag(ridge)
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        step[absent] = 0.0
        theta -= step
        if np.abs(step).max() < TOLERANCE:
            break
    return theta


def oob_accuracy(X: np.ndarray, theta: np.ndarray, chunk: _Chunk) -> np.ndarray:
    """Accuracy of each sample's classifier on the models that sample did not draw."""
    B, K, d = theta.shape
    scores = (theta.reshape(B * K, d) @ X.T).reshape(B, K, -1)  # 2-D product: far faster than batched
    predicted = _argmax_over_classes(scores)  # (B, n)
    correct = (predicted == chunk.labels[None]) & chunk.held_out
    return correct.sum(axis=1) / chunk.held_out.sum(axis=1)


def _argmax_over_classes(scores: np.ndarray) -> np.ndarray:
    """argmax over axis 1 of (B, K, n); a loop over the few classes beats a strided argmax."""
    best = scores[:, 0].copy()
    predicted = np.zeros(best.shape, dtype=np.intp)
    for k in range(1, scores.shape[1]):
        better = scores[:, k] > best
        predicted[better] = k
        np.maximum(best, scores[:, k], out=best)
    return predicted


def standardise_features(values: np.ndarray) -> np.ndarray:
    centred = values - values.mean(axis=0)
    sd = centred.std(axis=0)
    return centred / np.where(sd > 0, sd, 1.0)


def bootstrap_counts(n: int, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Draw counts (B, n) of bootstrap samples that leave at least one model out."""
    draws = rng.integers(0, n, size=(n_bootstrap, n))
    counts = np.zeros((n_bootstrap, n), dtype=np.int32)
    np.add.at(counts, (np.arange(n_bootstrap)[:, None], draws), 1)
    return counts[(counts == 0).any(axis=1)]


def _chunk_accuracies(features, labels, n_classes, feature_sets, counts, C) -> np.ndarray:
    chunk = _Chunk(labels, n_classes, counts)
    ones = np.ones((len(labels), 1))
    base_X = np.hstack([ones, features[:, :1]])
    base_theta = fit_ovr_logistic(base_X, chunk, C)
    out = np.empty((len(feature_sets), len(counts)))
    for i, columns in enumerate(feature_sets):
        X = np.hstack([ones, features[:, list(columns)]])
        # Every feature set starts with the baseline column: warm-start from its fit.
        start = np.zeros((*chunk.shape, X.shape[1]))
        start[..., :2] = base_theta
        theta = base_theta if columns == (0,) else fit_ovr_logistic(X, chunk, C, start)
        out[i] = oob_accuracy(X, theta, chunk)
    return out


def accuracies(
    features: np.ndarray, labels: np.ndarray, feature_sets: list[tuple[int, ...]],
    counts: np.ndarray, C: float, threads: int = 1,
) -> np.ndarray:
    """OOB accuracy (len(feature_sets), B) of each feature set on each bootstrap sample.

    Feature sets must start with column 0 (the baseline). Blocks of bootstrap samples run
    on ``threads`` threads (numpy releases the GIL in the heavy loops).
    """
    from concurrent.futures import ThreadPoolExecutor

    n_classes = int(labels.max()) + 1
    size = int(np.clip(BLOCK_ELEMENTS // (n_classes * len(labels)), 25, 1000))
    blocks = [counts[s : s + size] for s in range(0, len(counts), size)]
    if not blocks:
        return np.empty((len(feature_sets), 0))
    from threadpoolctl import threadpool_limits

    # The matrix products are tiny: BLAS threads on top of ours only add contention.
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        parts = pool.map(
            lambda block: _chunk_accuracies(features, labels, n_classes, feature_sets, block, C),
            blocks,
        )
        return np.concatenate(list(parts), axis=1)


def informativeness(
    values: pd.DataFrame,
    groups: pd.Series,
    baseline: str,
    metrics: list[str],
    n_bootstrap: int,
    seed: int,
    C: float = 1.0,
    pair_max_metrics: int = 25,
    n_bootstrap_pairs: int | None = None,
    threads: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Single-metric gains, the pair-gain matrix and a summary.

    Pairs are evaluated among the ``pair_max_metrics`` metrics with the largest single gain
    (all 23 of the paper fit in the default); the matrix diagonal holds the single gains.
    """
    known = groups.notna()
    values, groups = values[known], groups[known]
    labels = pd.factorize(groups, sort=True)[0]
    features = standardise_features(values[[baseline, *metrics]].to_numpy(dtype=float))
    rng_single, rng_pairs = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    counts = bootstrap_counts(len(labels), n_bootstrap, rng_single)
    single_sets = [(0,)] + [(0, j + 1) for j in range(len(metrics))]
    acc = accuracies(features, labels, single_sets, counts, C, threads)
    gains = acc[1:] - acc[0]
    single = pd.DataFrame(
        {
            "metric": metrics,
            "gain_mean": gains.mean(axis=1) if len(counts) else np.nan,
            "gain_sd": gains.std(axis=1, ddof=1) if len(counts) > 1 else np.nan,
            "accuracy_mean": acc[1:].mean(axis=1) if len(counts) else np.nan,
        }
    ).sort_values("gain_mean", ascending=False, kind="stable", ignore_index=True)

    chosen = list(single["metric"][:pair_max_metrics])
    index = {m: metrics.index(m) + 1 for m in chosen}
    pairs = list(combinations(chosen, 2))
    pair_counts = bootstrap_counts(len(labels), n_bootstrap_pairs or n_bootstrap, rng_pairs)
    pair_acc = accuracies(
        features, labels, [(0,)] + [(0, index[a], index[b]) for a, b in pairs], pair_counts, C, threads
    )
    matrix = pd.DataFrame(np.nan, index=chosen, columns=chosen)
    for m in chosen:
        matrix.loc[m, m] = single.set_index("metric").loc[m, "gain_mean"]
    if len(pair_counts):
        pair_gain = (pair_acc[1:] - pair_acc[0]).mean(axis=1)
        for (a, b), g in zip(pairs, pair_gain):
            matrix.loc[a, b] = matrix.loc[b, a] = g
    best_pair = None
    if pairs and len(pair_counts):
        k = int(np.argmax(pair_gain))
        best_pair = {"metrics": list(pairs[k]), "gain_mean": float(pair_gain[k])}
    summary = {
        "n_models": int(len(labels)),
        "n_groups": int(labels.max() + 1) if len(labels) else 0,
        "baseline_accuracy_mean": float(acc[0].mean()) if len(counts) else None,
        "n_bootstrap_used": int(len(counts)),
        "n_bootstrap_pairs_used": int(len(pair_counts)),
        "best_single": single.iloc[0][["metric", "gain_mean", "gain_sd"]].to_dict() if len(single) else None,
        "best_pair": best_pair,
        "estimator": "out-of-bag accuracy of one-vs-rest L2 logistic regression fit on each "
        "bootstrap sample; gains are paired differences to the ImageNet-only classifier",
        "C": C,
    }
    return single, matrix, summary
