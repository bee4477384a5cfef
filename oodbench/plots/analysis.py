"""Figures 1, 2, 7a and 8 of the paper, rendered from the files in results/analysis/.

Every figure renders even when a statistic could not be computed (too few models, no
transfer scores): the affected panel then shows the analysis's note instead of the plot.
Accuracies are stored as fractions and shown in percent.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from oodbench.atomic import save_figure  # noqa: E402

PERCENT = 100.0
ANNOTATE_MAX = 16  # write the values into heatmap cells up to this many rows/columns


def read_json(path: str) -> dict:
    return json.loads(Path(path).read_text())


def read_matrix(path: str) -> pd.DataFrame:
    """A matrix written by oodbench.analysis.run (never empty: at least a header line)."""
    return pd.read_csv(path, index_col=0)


def note_panel(ax, text: str) -> None:
    """An empty panel that says why there is no plot."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 42)), ha="center", va="center",
            transform=ax.transAxes, fontsize=9, color="0.25",
            bbox={"boxstyle": "round", "facecolor": "0.95", "edgecolor": "0.7"})


def caveat(ax, text: str) -> None:
    """A visible warning on a panel that is drawn but rests on very few models."""
    ax.text(0.99, 0.01, text, ha="right", va="bottom", transform=ax.transAxes, fontsize=7,
            color="firebrick", bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})


def _label(labels: Mapping[str, str], column: str) -> str:
    return labels.get(column, column)


def heatmap(ax, matrix: pd.DataFrame, labels: Mapping[str, str], colour_label: str,
            vmin: float, vmax: float, cmap: str = "RdBu_r", scale: float = 1.0, fmt: str = "{:.2f}"):
    values = matrix.to_numpy(dtype=float) * scale
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), [_label(labels, c) for c in matrix.columns],
                  rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(matrix.shape[0]), [_label(labels, r) for r in matrix.index], fontsize=7)
    if max(matrix.shape) <= ANNOTATE_MAX:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=6,
                        color="white" if abs(v) > 0.6 * max(abs(vmin), abs(vmax)) else "black")
    colourbar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    colourbar.set_label(colour_label, fontsize=8)
    colourbar.ax.tick_params(labelsize=7)
    return image


def gain_bars(ax, single: pd.DataFrame, labels: Mapping[str, str], top_k: int | None, title: str):
    """Horizontal bars of the accuracy gain (mean ± s.d.), best at the top."""
    rows = single.sort_values("gain_mean", ascending=False)
    if top_k:
        rows = rows.head(top_k)
    rows = rows.iloc[::-1]
    y = np.arange(len(rows))
    ax.barh(y, PERCENT * rows["gain_mean"], xerr=PERCENT * rows["gain_sd"].fillna(0),
            color="tab:blue", alpha=0.8, error_kw={"elinewidth": 0.8, "capsize": 2})
    ax.set_yticks(y, [_label(labels, m) for m in rows["metric"]], fontsize=7)
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xlabel("accuracy gain over ImageNet-only classifier (pp)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)


def _few_models_caveat(summary: dict) -> str | None:
    n = summary.get("n_models", 0)
    return f"only {n} models: treat as illustrative" if 0 < n < 10 else None


def plot_fig1(correlation_csv: str, correlation_json: str, single_csv: str, informativeness_json: str,
              pdf_path: str, png_path: str, labels: Mapping[str, str] | None = None, top_k: int = 10):
    """Figure 1: Spearman's rho between metrics (left); top-k informativeness gains (right)."""
    labels = labels or {}
    corr_summary, inf_summary = read_json(correlation_json), read_json(informativeness_json)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), gridspec_kw={"width_ratios": [1.25, 1]},
                                    layout="constrained")
    _correlation_panel(left, read_matrix(correlation_csv), corr_summary, labels)
    if inf_summary["status"] == "ok":
        gain_bars(right, pd.read_csv(single_csv), labels, top_k,
                  f"Informativeness: top {top_k} metrics\n(mean ± s.d., "
                  f"{inf_summary.get('n_bootstrap_used')} bootstrap samples, "
                  f"{inf_summary.get('n_models')} models, {inf_summary.get('n_groups')} groups)")
        if (text := _few_models_caveat(inf_summary)):
            caveat(right, text)
    else:
        note_panel(right, "Informativeness not computed: " + inf_summary["note"])
    fig.suptitle("Correlation and informativeness of robustness metrics", fontsize=11)
    save_figure(fig, pdf_path, png_path, dpi=200)


def _correlation_panel(ax, rho: pd.DataFrame, summary: dict, labels) -> None:
    if summary["status"] != "ok" or rho.empty:
        note_panel(ax, "Rank correlation not computed: " + (summary["note"] or "no metrics"))
        return
    heatmap(ax, rho, labels, "Spearman's ρ", vmin=-1, vmax=1)
    ax.set_title(
        f"Spearman's ρ between metrics ({summary['n_models']} models)\n"
        f"median ρ {summary.get('median_rho_between_metrics', float('nan')):.2f}; with "
        f"{_label(labels, summary['baseline'])}: median {summary.get('median_rho_with_baseline', float('nan')):.2f}, "
        f"min {summary.get('min_rho_with_baseline', float('nan')):.2f}",
        fontsize=9,
    )
    if (text := _few_models_caveat(summary)):
        caveat(ax, text)


def plot_fig8(single_csv: str, pairs_csv: str, informativeness_json: str, pdf_path: str, png_path: str,
              labels: Mapping[str, str] | None = None):
    """Figure 8: gain of every metric (left); gain of every pair, diagonal = single (right)."""
    labels = labels or {}
    summary = read_json(informativeness_json)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [0.8, 1]},
                                    layout="constrained")
    if summary["status"] != "ok":
        note_panel(left, "Informativeness not computed: " + summary["note"])
        note_panel(right, "Pair matrix not computed: " + summary["note"])
    else:
        single = pd.read_csv(single_csv)
        gain_bars(left, single, labels, None,
                  f"ImageNet + one metric ({summary.get('n_bootstrap_used')} bootstrap samples)")
        pairs = read_matrix(pairs_csv)
        if pairs.empty:
            note_panel(right, "Pair matrix empty: fewer than two metrics")
        else:
            bound = max(float(np.nanmax(np.abs(pairs.to_numpy()))) * PERCENT, 1e-6)
            heatmap(right, pairs, labels, "accuracy gain (pp)", vmin=-bound, vmax=bound,
                    cmap="PuOr_r", scale=PERCENT, fmt="{:.1f}")
            right.set_title(f"ImageNet + two metrics (diagonal: one metric; "
                            f"{summary.get('n_bootstrap_pairs_used')} bootstrap samples)", fontsize=9)
        if (text := _few_models_caveat(summary)):
            caveat(left, text)
    fig.suptitle("Informativeness of robustness metrics: gain in out-of-bag accuracy of a "
                 "logistic classifier of model groups over ImageNet accuracy alone", fontsize=10)
    save_figure(fig, pdf_path, png_path, dpi=200)


def plot_fig7a(pca_csv: str, pca_json: str, pdf_path: str, png_path: str):
    """Figure 7a: explained variance of the residual PCs vs the permutation null."""
    summary = read_json(pca_json)
    fig, ax = plt.subplots(figsize=(5, 3.8), layout="constrained")
    table = pd.read_csv(pca_csv)
    if summary["status"] != "ok" or table.empty:
        note_panel(ax, "Residual PCA not computed: " + (summary["note"] or "no components"))
    else:
        k = table["component"].to_numpy()
        observed = PERCENT * table["explained"]
        ax.errorbar(k - 0.08, observed,
                    yerr=PERCENT * np.abs(table[["ci_low", "ci_high"]].to_numpy().T - table["explained"].to_numpy()),
                    fmt="o", color="tab:blue", capsize=3, label="observed (95% bootstrap CI)")
        null = PERCENT * table["null_median"]
        ax.errorbar(k + 0.08, null,
                    yerr=PERCENT * np.abs(table[["null_low", "null_high"]].to_numpy().T - table["null_median"].to_numpy()),
                    fmt="s", color="0.5", capsize=3, label="permutation null (median, 95% band)")
        for x, y, sig in zip(k, observed, table["significant"].astype(str) == "True"):
            if sig:
                ax.annotate("*", (x - 0.08, y), textcoords="offset points", xytext=(6, 2), fontsize=12)
        ax.set_xticks(k, [f"PC{i}" for i in k])
        ax.set_xlim(0.5, k.max() + 0.5)
        ax.set_ylabel("variance explained (%)")
        ax.set_xlabel("principal component of standardised residuals")
        ax.set_title(f"Residuals after regressing on ImageNet accuracy\n{summary['n_models']} models, "
                     f"{len(summary['robustness_metrics'])} metrics; {summary['n_significant_components']} "
                     f"significant component(s) (*)", fontsize=9)
        ax.legend(fontsize=7, frameon=False)
        ax.grid(alpha=0.3)
        if (text := _few_models_caveat(summary)):
            caveat(ax, text)
    save_figure(fig, pdf_path, png_path, dpi=200)


def plot_fig2(points_csv: str, correlation_csv: str, summary_json: str, pdf_path: str, png_path: str,
              labels: Mapping[str, str] | None = None):
    """Figure 2: transfer vs ImageNet; mean robustness vs transfer; transfer-group x metric rho."""
    labels = labels or {}
    summary = read_json(summary_json)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1, 1, 1.4]},
                             layout="constrained")
    if summary["status"] != "ok":
        for ax in axes:
            ax.set_axis_off()
        note_panel(axes[1], "Transfer analysis not computed: " + summary["note"])
    else:
        points = pd.read_csv(points_csv)
        transfer = f"transfer_{summary['transfer_group']}"
        colours = _group_colours(points["group"])
        _scatter(axes[0], points, "imagenet", transfer, colours,
                 f"{_label(labels, summary['baseline'])} accuracy (%)",
                 f"mean transfer score, {summary['transfer_group']} (%)",
                 f"Transfer vs ImageNet (ρ = {summary['rho_transfer_imagenet']:.2f})")
        _scatter(axes[1], points, transfer, "mean_robustness", colours,
                 f"mean transfer score, {summary['transfer_group']} (%)",
                 "mean robustness accuracy (%)",
                 f"Robustness vs transfer (ρ = {summary['rho_transfer_mean_robustness']:.2f};\n"
                 f"residual robustness ρ = {summary['rho_transfer_residual_robustness']:.2f})")
        handles = [plt.Line2D([], [], marker="o", linestyle="none", color=c, label=g) for g, c in colours.items()]
        axes[1].legend(handles=handles, title="model group", title_fontsize=7, fontsize=6,
                       frameon=False, loc="upper left")
        matrix = read_matrix(correlation_csv)
        heatmap(axes[2], matrix, labels, "Spearman's ρ", vmin=-1, vmax=1)
        axes[2].set_title("Transfer groups vs robustness metrics", fontsize=9)
        if (text := _few_models_caveat(summary)):
            for ax in axes:
                caveat(ax, text)
    fig.suptitle("Transfer learning, ImageNet accuracy and robustness", fontsize=11)
    save_figure(fig, pdf_path, png_path, dpi=200)


def _group_colours(groups: pd.Series) -> dict:
    names = sorted(groups.fillna("(no group)").astype(str).unique())
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    return {g: cmap(i % cmap.N) for i, g in enumerate(names)}


def _scatter(ax, points, x, y, colours, xlabel, ylabel, title):
    groups = points["group"].fillna("(no group)").astype(str)
    ax.scatter(PERCENT * points[x], PERCENT * points[y], c=[colours[g] for g in groups], s=22,
               edgecolors="0.2", linewidths=0.4)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
