"""Accuracy vs test resolution, one panel per dataset, one line per model."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from oodbench.atomic import save_figure  # noqa: E402


def top1_by_resolution(metrics: pd.DataFrame) -> pd.DataFrame:
    rows = metrics[(metrics["metric"] == "top1") & (metrics["subset"] == "all")].copy()
    rows["resolution"] = rows["resolution"].astype(str)
    return rows


def plot_accuracy_vs_resolution(
    metrics: pd.DataFrame, pdf_path: str, png_path: str, default_crops: dict | None = None
) -> None:
    """Integer resolutions as lines; each model's own preprocessing (`default`) as a star at its crop size."""
    rows = top1_by_resolution(metrics)
    rows["crop"] = rows["model"].map(default_crops or {})
    datasets = sorted(rows["dataset"].unique()) or ["(no scores)"]
    columns = min(3, len(datasets))
    lines = math.ceil(len(datasets) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.4 * lines), squeeze=False)
    models = sorted(rows["model"].unique())
    colours = {m: plt.cm.viridis(i / max(1, len(models) - 1)) for i, m in enumerate(models)}
    for ax, dataset in zip(axes.flat, datasets):
        _panel(ax, rows[rows["dataset"] == dataset], colours, dataset)
    for ax in list(axes.flat)[len(datasets) :]:
        ax.set_visible(False)
    if models:
        handles = [plt.Line2D([], [], color=colours[m], marker="o", label=m) for m in models]
        handles.append(plt.Line2D([], [], color="grey", marker="*", linestyle="none", markersize=10, label="default preprocessing"))
        fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), frameon=False)
    fig.suptitle("Top-1 accuracy vs test resolution (shorter side ⌊1.15·r⌋, centre crop r)")
    fig.tight_layout(rect=(0, 0.08 if models else 0, 1, 0.95))
    save_figure(fig, pdf_path, png_path)


def _panel(ax, rows: pd.DataFrame, colours: dict, dataset: str) -> None:
    if rows.empty:
        ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
    for model, group in rows.groupby("model"):
        numeric = group[group["resolution"].str.isdigit()].copy()
        numeric["r"] = numeric["resolution"].astype(int)
        numeric = numeric.sort_values("r")
        ax.plot(numeric["r"], 100 * numeric["value"], marker="o", color=colours[model], label=model)
        default = group[group["resolution"] == "default"]
        if not default.empty and default["crop"].notna().all():
            ax.plot(default["crop"], 100 * default["value"], marker="*", markersize=12, color=colours[model], linestyle="none")
    ax.set_title(dataset)
    ax.set_xlabel("test resolution r (px)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
