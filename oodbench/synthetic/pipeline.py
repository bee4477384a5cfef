"""The synthetic stage's job bodies: what each rule of rules/synthetic.smk runs (scripts call these)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from oodbench.atomic import write_csv
from oodbench.synthetic import analysis, compose, sources
from oodbench.synthetic.grid import factor_specs

log = logging.getLogger(__name__)


def select_openimages(synthetic: Mapping, raw_dir: str | os.PathLike, selection_csv: str | os.PathLike, fetch=None) -> pd.DataFrame:
    """Download the OpenImages annotations and choose the objects (flags, class map, limits)."""
    openimages = synthetic["objects"]["openimages"]
    raw_dir = Path(raw_dir)
    fetch = fetch or sources.default_fetch()
    files = sources.openimages_metadata_files(openimages)
    sources.fetch_files(files, raw_dir / "meta", fetch, openimages.get("checksums"))
    splits = openimages["splits"]
    selection = sources.select_openimages_objects(
        raw_dir / "meta" / "class-descriptions-boxable.csv",
        {s: raw_dir / "meta" / f"{s}-annotations-object-segmentation.csv" for s in splits},
        {s: raw_dir / "meta" / f"{s}-annotations-bbox.csv" for s in splits},
        sources.read_class_map(openimages.get("class_map") or sources.DEFAULT_CLASS_MAP),
        min_predicted_iou=float(openimages.get("min_predicted_iou", 0.0)),
        max_per_class=openimages.get("max_per_class"),
        exclude=openimages.get("exclude", []),
        drop_flags=openimages.get("drop_flags", sources.DROP_FLAGS),
    )
    write_csv(selection, Path(selection_csv))
    log.info("OpenImages: %d objects of %d classes selected", len(selection), selection["class_name"].nunique())
    return selection


def prepare_objects(synthetic: Mapping, objects_dir: str | os.PathLike, selection_csv: str | None = None, fetch=None) -> pd.DataFrame:
    """objects.csv + cut-outs from the configured source (openimages / folder / demo)."""
    objects = synthetic["objects"]
    objects_dir = Path(objects_dir)
    source = objects["source"]
    if source == "demo":
        from oodbench.synthetic.demo_sources import prepare_demo_objects

        table = prepare_demo_objects(objects_dir)
    elif source == "folder":
        sources.reset_folder(objects_dir)
        table = sources.prepare_cutout_folder(objects["folder"]["path"], objects["folder"]["class_map"], objects_dir)
    elif source == "openimages":
        openimages = objects["openimages"]
        raw_dir = Path(selection_csv).parent
        selection = pd.read_csv(selection_csv, dtype={"ImageID": str, "BoxID": str, "object_id": str})
        sources.fetch_openimages_assets(selection, openimages, raw_dir, fetch or sources.default_fetch())
        sources.reset_folder(objects_dir)
        class_map = sources.read_class_map(openimages.get("class_map") or sources.DEFAULT_CLASS_MAP)
        table, rejected = sources.prepare_openimages_objects(
            selection, class_map, raw_dir, objects_dir, int(openimages.get("min_mask_pixels", 0))
        )
        log.info("OpenImages: %d cut-outs written, %d rejected (see rejected.csv)", len(table), len(rejected))
    else:
        raise sources.SourceError(f"synthetic.objects.source: expected openimages, folder or demo, got {source!r}")
    log.info("%d objects of %d classes prepared in %s", len(table), table["class_name"].nunique(), objects_dir)
    return table


def prepare_backgrounds(synthetic: Mapping, table_path: str | os.PathLike) -> pd.DataFrame:
    backgrounds = synthetic["backgrounds"]
    canvas = compose.canvas_size(synthetic)
    table_path = Path(table_path)
    if backgrounds["source"] == "demo":
        from oodbench.synthetic.demo_sources import prepare_demo_backgrounds

        table = prepare_demo_backgrounds(table_path.parent / "demo_backgrounds", canvas, table_path, int(synthetic.get("seed", 0)))
    elif backgrounds["source"] == "folder":
        table = sources.prepare_backgrounds(backgrounds["folder"], canvas, table_path)
    else:
        raise sources.SourceError(f"synthetic.backgrounds.source: expected folder or demo, got {backgrounds['source']!r}")
    log.info("%d backgrounds validated", len(table))
    return table


def merge(synthetic: Mapping, factor: str, shard_dirs: Sequence[str], objects_csv: str, dest_dir: str) -> pd.DataFrame:
    objects = compose.read_objects(objects_csv)
    rows = compose.merge_shards(factor, shard_dirs, objects, dest_dir)
    spec = factor_specs(synthetic, grid_only=True)[factor]
    summary = compose.summarise_counts(rows, spec, len(objects), int(synthetic.get("backgrounds_per_object", 2)))
    log.info("synthetic_%s counts: %s", factor, summary)
    return rows


def analyse(synthetic: Mapping, variant: str, manifest_path: str, logits_by_model: Mapping[str, str], out_csv: str) -> pd.DataFrame:
    table = analysis.run_analysis(synthetic, variant, manifest_path, logits_by_model)
    write_csv(table, Path(out_csv))
    return table


def render_figure(synthetic: Mapping, figure: str, inputs: Sequence[str], pdf: str, png: str) -> None:
    """Draw one of the synthetic figures from its analysis tables (or manifests for Figure 12)."""
    from oodbench.plots import synthetic as plots

    figures = synthetic.get("figures", {}) or {}
    main_rows = figures.get("main_rows")
    if figure == "fig12_samples":
        columns = {"size": "area", "location": "position", "rotation": "angle"}
        factors = [Path(path).parent.name.removeprefix("synthetic_") for path in inputs]
        manifests = [(factor, Path(path).parent / "manifest.csv", columns.get(factor, "area")) for factor, path in zip(factors, inputs)]
        plots.plot_samples(manifests, pdf, png, int(figures.get("samples_per_factor", 6)))
        return
    tables = [pd.read_csv(path) for path in inputs]
    if figure in ("fig5_location", "fig15_location", "fig16_location_50", "fig17_location_75"):
        plots.plot_location_grid(tables[0], pdf, png, max_rows=main_rows if figure == "fig5_location" else None)
    elif figure == "fig6_rotation_size":
        plots.plot_factor_heatmaps([(tables[0], "angle"), (tables[1], "area")], pdf, png, max_rows=main_rows)
    elif figure == "fig13_size":
        plots.plot_factor_heatmaps([(tables[0], "area")], pdf, png)
    elif figure == "fig14_rotation":
        plots.plot_factor_heatmaps([(tables[0], "angle")], pdf, png)
    else:
        raise ValueError(f"unknown synthetic figure {figure!r}")
