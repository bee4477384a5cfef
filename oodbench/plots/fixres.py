"""Figures 4, 10 and 11 (Section 4.2, Appendix C): test resolution and FixRes.

Input: rows of results/metrics.csv (contract §4). `resolution` holds `default` or an integer as a
string; a FixRes model is named `<model>+fixres<r>` and evaluated at r.

- Default: the model at its own preprocessing (`resolution == "default"`).
- Best: the best accuracy over the integer resolutions of the sweep.
- FixRes: the best over r of `<model>+fixres<r>` evaluated at r ("applying FixRes for the same
  set of resolutions and selecting the best resolution", caption of Fig. 4).

A panel is one (dataset, metric) with subset `all`. Panels without data are drawn with a note,
never dropped, so a figure always has the layout the caption describes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from oodbench.atomic import save_figure
from oodbench.finetune.settings import FIXRES_NAME

ACCURACY_METRICS = ("top1", "pm10")
FIG4_DATASETS = ("imagenet_a", "objectnet")
BAR_KINDS = ("Default", "Best", "FixRes")
BAR_COLOURS = {"Default": "#9e9e9e", "Best": "#4c72b0", "FixRes": "#dd8452"}


def split_fixres(models: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(base model, fine-tuning resolution or NaN) for each model name."""
    parts = models.astype(str).str.extract(FIXRES_NAME)
    base = parts["base"].fillna(models.astype(str))
    return base, pd.to_numeric(parts["resolution"], errors="coerce")


def tidy_accuracy(metrics: pd.DataFrame, metrics_wanted: Sequence[str] = ACCURACY_METRICS) -> pd.DataFrame:
    """Rows of subset `all` for the accuracy metrics, with base model, FixRes flag and numeric r."""
    rows = metrics[(metrics["subset"].astype(str) == "all") & metrics["metric"].isin(metrics_wanted)].copy()
    rows["resolution"] = rows["resolution"].astype(str)
    rows["base"], rows["fixres_at"] = split_fixres(rows["model"])
    rows["is_fixres"] = rows["fixres_at"].notna()
    rows["r"] = pd.to_numeric(rows["resolution"], errors="coerce")
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    # A FixRes model counts only at the resolution it was fine-tuned for.
    keep = ~rows["is_fixres"] | (rows["r"] == rows["fixres_at"])
    return rows[keep]


def summary_table(metrics: pd.DataFrame, metrics_wanted: Sequence[str] = ACCURACY_METRICS) -> pd.DataFrame:
    """One row per (dataset, metric, base model): default, best (+ its r), fixres (+ its r)."""
    rows = tidy_accuracy(metrics, metrics_wanted)
    keys = ["dataset", "metric", "base"]
    plain = rows[~rows["is_fixres"]]
    default = plain[plain["resolution"] == "default"].groupby(keys)["value"].max().rename("default")
    best = _best(plain[plain["r"].notna()], keys, "best")
    fixres = _best(rows[rows["is_fixres"]], keys, "fixres")
    table = pd.concat([default, best, fixres], axis=1).reset_index()
    return table.rename(columns={"base": "model"})


def _best(rows: pd.DataFrame, keys: list[str], name: str) -> pd.DataFrame:
    if rows.empty:
        return pd.DataFrame(columns=[name, f"{name}_r"], index=pd.MultiIndex.from_tuples([], names=keys))
    top = rows.sort_values("value", ascending=False, kind="stable").drop_duplicates(keys).set_index(keys)
    return top[["value", "r"]].rename(columns={"value": name, "r": f"{name}_r"})


def panels_for(metrics: pd.DataFrame, datasets: Sequence[str] | None, metrics_wanted=ACCURACY_METRICS) -> list[tuple[str, str]]:
    """(dataset, metric) panels: the requested datasets (kept even without data) or all present."""
    rows = tidy_accuracy(metrics, metrics_wanted)
    present = rows[["dataset", "metric"]].drop_duplicates()
    if datasets is None:
        datasets = sorted(present["dataset"].unique())
    panels = []
    for dataset in datasets:
        found = [m for m in metrics_wanted if ((present["dataset"] == dataset) & (present["metric"] == m)).any()]
        panels += [(dataset, m) for m in found] or [(dataset, metrics_wanted[0])]
    # An empty table still gets one (annotated) panel rather than an empty figure.
    return panels or [("(no dataset)", metrics_wanted[0])]


def _model_order(metrics: pd.DataFrame, models: Sequence[str] | None) -> list[str]:
    if models is not None:
        return list(models)
    base, _ = split_fixres(metrics["model"].drop_duplicates())
    return list(dict.fromkeys(base))


def note_panel(ax, text: str) -> None:
    """A grid cell without data. Unlike plots.analysis.note_panel it keeps the axes: the cell's
    frame keeps the grid the caption describes, and in figure 11 the first column's y label
    names the row's model."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes,
            fontsize=8, color="#b00020", bbox={"boxstyle": "round", "fc": "#fff3f3", "ec": "#b00020"})
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int, ncols: int, width: float, height: float):
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def plot_fixres_bars(
    metrics: pd.DataFrame,
    datasets: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    metrics_wanted: Sequence[str] = ACCURACY_METRICS,
    ncols: int = 2,
    title: str | None = None,
):
    """Fig. 4 (datasets = ImageNet-A, ObjectNet) and Fig. 10 (datasets = None: every dataset)."""
    table = summary_table(metrics, metrics_wanted)
    order = _model_order(metrics, models)
    panels = panels_for(metrics, datasets, metrics_wanted)
    width = max(4.0, 0.45 * len(order) + 1.5)
    fig, axes = _grid(len(panels), ncols, width, 3.6)
    for ax, (dataset, metric) in zip(axes, panels):
        part = table[(table["dataset"] == dataset) & (table["metric"] == metric)].set_index("model")
        ax.set_title(f"{dataset} — {metric}", fontsize=9)
        if part.empty:
            note_panel(ax, f"no {metric} results for {dataset} in metrics.csv\n(dataset not in this run)")
            continue
        _draw_bars(ax, part.reindex([m for m in order if m in part.index]))
    from matplotlib.patches import Patch

    handles = [Patch(color=BAR_COLOURS[k], label=k) for k in BAR_KINDS]
    fig.legend(handles=handles, loc="upper center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 1.0))
    if title:
        fig.suptitle(title, y=1.04, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _draw_bars(ax, part: pd.DataFrame) -> None:
    x = np.arange(len(part))
    width = 0.27
    columns = {"Default": "default", "Best": "best", "FixRes": "fixres"}
    for k, kind in enumerate(BAR_KINDS):
        column = columns[kind]
        values = pd.to_numeric(part.get(column), errors="coerce") if column in part else pd.Series(np.nan, index=part.index)
        heights = values.to_numpy(dtype=float) * 100
        positions = x + (k - 1) * width
        ax.bar(positions, np.nan_to_num(heights), width, color=BAR_COLOURS[kind])
        resolutions = part.get(f"{column}_r")
        for pos, h, i in zip(positions, heights, range(len(part))):
            if np.isnan(h):
                ax.text(pos, 0, "n/a", rotation=90, ha="center", va="bottom", fontsize=6, color="#666")
            elif resolutions is not None and not pd.isna(resolutions.iloc[i]):
                ax.text(pos, h, f"{int(resolutions.iloc[i])}", rotation=90, ha="center", va="bottom", fontsize=5)
    ax.set_xticks(x)
    ax.set_xticklabels(part.index, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)


def plot_accuracy_vs_resolution(
    metrics: pd.DataFrame,
    datasets: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    metrics_wanted: Sequence[str] = ACCURACY_METRICS,
):
    """Fig. 11: rows = models, columns = (dataset, metric); accuracy vs r without and with FixRes.

    The model's default preprocessing is a dotted horizontal line.
    """
    import matplotlib.pyplot as plt

    rows = tidy_accuracy(metrics, metrics_wanted)
    order = _model_order(metrics, models) or ["(no models)"]
    panels = panels_for(metrics, datasets, metrics_wanted)
    fig, axes = plt.subplots(len(order), len(panels), figsize=(2.6 * len(panels), 2.0 * len(order) + 0.6),
                             squeeze=False)
    ticks = sorted(int(r) for r in rows["r"].dropna().unique())
    for i, model in enumerate(order):
        for j, (dataset, metric) in enumerate(panels):
            ax = axes[i, j]
            part = rows[(rows["base"] == model) & (rows["dataset"] == dataset) & (rows["metric"] == metric)]
            if i == 0:
                ax.set_title(f"{dataset} — {metric}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{model}\naccuracy (%)", fontsize=7)
            if part.empty:
                note_panel(ax, f"no {metric} results\nfor {model} on {dataset}")
                continue
            _draw_curves(ax, part, ticks)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat:
        if ax.get_legend_handles_labels()[0]:
            handles, labels = ax.get_legend_handles_labels()
            break
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=3, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig


def _draw_curves(ax, part: pd.DataFrame, ticks: list[int]) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    plain = part[~part["is_fixres"] & part["r"].notna()].sort_values("r")
    fixres = part[part["is_fixres"]].sort_values("r")
    default = part[~part["is_fixres"] & (part["resolution"] == "default")]
    if not plain.empty:
        ax.plot(plain["r"], plain["value"] * 100, "o-", color=BAR_COLOURS["Best"], ms=3, label="test resolution r")
    if not fixres.empty:
        ax.plot(fixres["r"], fixres["value"] * 100, "s--", color=BAR_COLOURS["FixRes"], ms=3,
                label="FixRes at r, tested at r")
    if not default.empty:
        ax.axhline(default["value"].max() * 100, color=BAR_COLOURS["Default"], ls=":", label="default preprocessing")
    if ticks:
        # Same log-2 axis in every panel, labelled with the sweep's resolutions themselves.
        ax.set_xscale("log", base=2)
        ax.set_xlim(ticks[0] / 1.2, ticks[-1] * 1.2)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(t) for t in ticks], fontsize=6, rotation=45)
    ax.tick_params(axis="y", labelsize=6)


FIGURES = {
    "fig4_fixres_robustness": {"kind": "bars", "datasets": FIG4_DATASETS,
                               "title": "Default vs best test resolution vs FixRes"},
    "fig10_fixres_all": {"kind": "bars", "datasets": None, "title": "Default vs best test resolution vs FixRes"},
    "fig11_accuracy_vs_resolution_fixres": {"kind": "curves", "datasets": None},
}


def render_figure(name: str, metrics: pd.DataFrame, pdf_path, png_path, datasets=None, models=None,
                  metrics_wanted: Sequence[str] = ACCURACY_METRICS) -> None:
    """Render one of FIGURES; `datasets` overrides the figure's own list (None keeps it)."""
    if name not in FIGURES:
        raise ValueError(f"unknown FixRes figure {name!r}; known: {sorted(FIGURES)}")
    spec = FIGURES[name]
    chosen = spec["datasets"] if datasets is None else datasets
    if spec["kind"] == "bars":
        title = spec["title"] + (f" ({', '.join(chosen)})" if chosen else "")
        fig = plot_fixres_bars(metrics, chosen, models, metrics_wanted, title=title)
    else:
        fig = plot_accuracy_vs_resolution(metrics, chosen, models, metrics_wanted)
    save_figure(fig, pdf_path, png_path)
