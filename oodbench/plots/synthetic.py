"""Figures of the synthetic factor-of-variation study (paper Figures 5, 6, 12-17).

The tables are those of ``oodbench.synthetic.analysis`` (one per variant). In every figure the
first row (or column) of a panel shows the normalised score (ratio to the best value, or to the
95th percentile for locations) with a sequential colour map, and the other rows the difference of
their normalised score to the first row with a diverging one (blue = relatively better).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from oodbench.atomic import save_figure  # noqa: E402

RATIO_CMAP = "Blues"
DIFFERENCE_CMAP = "RdBu"
FACTOR_AXES = {"area": ("object area (% of image)", 100.0), "angle": ("rotation angle (degrees)", 1.0)}


def limit_rows(table: pd.DataFrame, max_rows: int | None) -> pd.DataFrame:
    return table if not max_rows else table[table["row"] < max_rows]


def _difference_limit(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 0.05


def _pivot_rows(table: pd.DataFrame, column: str, value: str) -> tuple[np.ndarray, list[float], list[str]]:
    pivot = table.pivot_table(index="row", columns=column, values=value, aggfunc="first").sort_index()
    labels = table.drop_duplicates("row").set_index("row").loc[pivot.index, "row_label"].tolist()
    return pivot.to_numpy(float), list(pivot.columns), labels


def draw_factor_panel(figure, cell, table: pd.DataFrame, column: str, title: str) -> None:
    """One panel: the ratio row on top, difference rows below, factor values along x."""
    ratio, values, labels = _pivot_rows(table[table["row"] == 0], column, "normalised")
    others = table[table["row"] > 0]
    axes_label, scale = FACTOR_AXES[column]
    ticks = _tick_positions(len(values))
    tick_labels = [f"{values[i] * scale:g}" for i in ticks]
    heights = [1, max(1, others["row"].nunique())] if len(others) else [1]
    grid = cell.subgridspec(len(heights), 2, height_ratios=heights, width_ratios=[40, 1], hspace=0.08, wspace=0.03)
    top = figure.add_subplot(grid[0, 0])
    image = top.imshow(ratio, aspect="auto", cmap=RATIO_CMAP, vmin=np.nanmin(ratio), vmax=1.0, interpolation="nearest")
    top.set_yticks(range(len(labels)), labels, fontsize=7)
    top.set_title(title, fontsize=9)
    top.set_xticks([])
    figure.colorbar(image, cax=figure.add_subplot(grid[0, 1])).ax.tick_params(labelsize=6)
    bottom_axis = top
    if len(others):
        diff, _, diff_labels = _pivot_rows(others, column, "difference")
        limit = _difference_limit(diff)
        bottom_axis = figure.add_subplot(grid[1, 0])
        image = bottom_axis.imshow(diff, aspect="auto", cmap=DIFFERENCE_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
        bottom_axis.set_yticks(range(len(diff_labels)), diff_labels, fontsize=7)
        figure.colorbar(image, cax=figure.add_subplot(grid[1, 1])).ax.tick_params(labelsize=6)
    bottom_axis.set_xticks(ticks, tick_labels, fontsize=6, rotation=90)
    bottom_axis.set_xlabel(axes_label, fontsize=8)


def _tick_positions(count: int, most: int = 20) -> list[int]:
    step = max(1, int(np.ceil(count / most)))
    return list(range(0, count, step))


def plot_factor_heatmaps(
    tables: Sequence[tuple[pd.DataFrame, str]], pdf_path, png_path, max_rows: int | None = None
) -> None:
    """Figures 6, 13, 14: one column per (table, factor column), one row per model-grid panel."""
    panels = sorted(tables[0][0]["panel"].unique())
    figure = plt.figure(figsize=(6.5 * len(tables), 2.6 * len(panels)), layout="constrained")
    outer = figure.add_gridspec(len(panels), len(tables))
    for j, (table, column) in enumerate(tables):
        table = limit_rows(table, max_rows)
        for i, panel in enumerate(panels):
            rows = table[table["panel"] == panel]
            draw_factor_panel(figure, outer[i, j], rows, column, str(rows["panel_title"].iloc[0]))
    save_figure(figure, pdf_path, png_path)


def location_image(rows: pd.DataFrame, value: str) -> tuple[np.ndarray, list[float], list[float]]:
    """2-D array indexed [y, x] (y grows downwards, as in the image)."""
    pivot = rows.pivot_table(index="y", columns="x", values=value, aggfunc="first").sort_index().sort_index(axis=1)
    return pivot.to_numpy(float), list(pivot.columns), list(pivot.index)


def plot_location_grid(table: pd.DataFrame, pdf_path, png_path, max_rows: int | None = None, title: str | None = None) -> None:
    """Figures 5 (right), 15, 16, 17: panels as figure rows, model-grid rows as columns."""
    table = limit_rows(table, max_rows)
    panels = sorted(table["panel"].unique())
    columns = int(table["row"].max()) + 1
    figure, axes = plt.subplots(len(panels), columns, figsize=(2.0 * columns + 0.8, 2.1 * len(panels)), squeeze=False, layout="constrained")
    for i, panel in enumerate(panels):
        rows = table[table["panel"] == panel]
        differences = rows.loc[rows["row"] > 0, "difference"].to_numpy(float)
        limit = _difference_limit(differences)
        last = int(rows["row"].max())
        for r in range(columns):
            axis = axes[i, r]
            member = rows[rows["row"] == r]
            if member.empty:
                axis.set_axis_off()
                continue
            value = "normalised" if r == 0 else "difference"
            image, xs, ys = location_image(member, value)
            extent = (min(xs), max(xs), max(ys), min(ys)) if len(xs) > 1 and len(ys) > 1 else None
            if r == 0:
                shown = axis.imshow(image, cmap=RATIO_CMAP, vmin=np.nanmin(image), vmax=max(1.0, np.nanmax(image)), extent=extent, interpolation="nearest")
            else:
                shown = axis.imshow(image, cmap=DIFFERENCE_CMAP, vmin=-limit, vmax=limit, extent=extent, interpolation="nearest")
            axis.set_title(str(member["row_label"].iloc[0]), fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_ylabel(str(member["panel_title"].iloc[0]), fontsize=9)
            if r in (0, last):
                figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    if title:
        figure.suptitle(title, fontsize=9)
    save_figure(figure, pdf_path, png_path)


def sample_rows(manifest: pd.DataFrame, column: str, count: int) -> pd.DataFrame:
    """``count`` images spread over the factor's values, cycling through objects."""
    values = np.sort(manifest[column].unique())
    picks = values[np.unique(np.linspace(0, len(values) - 1, count).round().astype(int))]
    objects = sorted(manifest["object_id"].unique())
    chosen = []
    for k, value in enumerate(picks):
        candidates = manifest[manifest[column] == value]
        preferred = candidates[candidates["object_id"] == objects[k % len(objects)]]
        chosen.append((preferred if len(preferred) else candidates).iloc[0])
    return pd.DataFrame(chosen)


def plot_samples(manifests: Sequence[tuple[str, str | os.PathLike, str]], pdf_path, png_path, per_factor: int = 6) -> None:
    """Figure 12: one row per factor, ``per_factor`` images across its values.

    ``manifests``: (row title, manifest path, column that varies: area / angle / position).
    """
    figure, axes = plt.subplots(len(manifests), per_factor, figsize=(1.6 * per_factor, 1.7 * len(manifests)), squeeze=False, layout="constrained")
    for i, (name, manifest_path, column) in enumerate(manifests):
        manifest_path = Path(manifest_path)
        manifest = pd.read_csv(manifest_path, dtype={"image_id": str, "path": str, "object_id": str})
        if column == "position":
            manifest = manifest.assign(position=manifest["y"] * 10.0 + manifest["x"])
        rows = sample_rows(manifest, column, per_factor)
        for j in range(per_factor):
            axis = axes[i, j]
            axis.set_xticks([])
            axis.set_yticks([])
            if j >= len(rows):
                axis.set_axis_off()
                continue
            row = rows.iloc[j]
            with Image.open(manifest_path.parent / row["path"]) as image:
                axis.imshow(np.asarray(image.convert("RGB")))
            axis.set_xlabel(_sample_caption(row, column), fontsize=6)
        axes[i, 0].set_ylabel(name, fontsize=9)
    save_figure(figure, pdf_path, png_path)


def _sample_caption(row: pd.Series, column: str) -> str:
    if column == "area":
        return f"area {row['area'] * 100:g}%"
    if column == "angle":
        return f"{row['angle']:g}°, area {row['area'] * 100:g}%"
    return f"x={row['x']:.2f}, y={row['y']:.2f}"
