"""One function per analysis rule: read the merged table, compute, write CSV/JSON atomically.

Every JSON carries ``status`` (``ok``, ``insufficient_models`` or ``not_available``) and a
``note`` the figures print, so that too few models give a readable figure instead of a
failed job.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from oodbench.analysis.table import AnalysisConfig, AnalysisData, prepare
from oodbench.atomic import write_csv, write_json
from oodbench.metrics import read_metrics

log = logging.getLogger("oodbench")


def merge(metrics_path: str | None, external_entries: Sequence[Mapping], out_path: str) -> None:
    from oodbench.analysis.external import load_all

    merged = load_all(metrics_path, external_entries)
    log.info("merged results: %d rows, %d models, sources %s", len(merged),
             merged["model"].nunique(), sorted(merged["source"].dropna().unique()))
    write_csv(merged, out_path)


def load(merged_path: str, config_block: Mapping | None) -> tuple[AnalysisConfig, AnalysisData]:
    config = AnalysisConfig.from_mapping(config_block)
    data = prepare(read_metrics(merged_path), config)
    log.info("analysis matrix: %d models, baseline %s, %d robustness metrics, transfer %s; "
             "dropped metrics %s, dropped models %s", data.n_models, data.baseline,
             len(data.robustness), data.transfer, data.dropped_metrics, data.dropped_models)
    return config, data


def _status(n_models: int, needed: int, what: str, extra_ok: bool = True, why: str = "") -> dict:
    if n_models < needed:
        return {"status": "insufficient_models",
                "note": f"{n_models} model(s) with complete results; {what} needs at "
                        f"least {needed} (analysis.min_models)"}
    if not extra_ok:
        return {"status": "not_available", "note": why}
    return {"status": "ok", "note": ""}


def correlation(merged_path: str, config_block: Mapping, matrix_path: str, summary_path: str) -> None:
    from oodbench.analysis.correlation import correlation_summary, spearman_matrix

    config, data = load(merged_path, config_block)
    columns = [data.baseline, *data.robustness]
    rho = spearman_matrix(data.values[columns]) if data.n_models else pd.DataFrame(
        np.nan, index=columns, columns=columns)
    status = _status(data.n_models, config.min_models_for("correlation"), "the rank correlation",
                     bool(data.robustness), "no robustness metric besides the baseline")
    summary = {**status, **data.describe(), "labels": {c: config.label(c) for c in columns}}
    if status["status"] == "ok":
        summary.update(correlation_summary(data, rho))
    rho.index.name = "metric"
    write_csv(rho, matrix_path, index=True)
    write_json(summary, summary_path)


def regression(merged_path: str, config_block: Mapping, table_path: str, residuals_path: str,
               summary_path: str) -> None:
    from oodbench.analysis.regression import regress_metrics

    config, data = load(merged_path, config_block)
    status = _status(data.n_models, config.min_models_for("regression"), "a regression on the baseline",
                     bool(data.robustness), "no robustness metric besides the baseline")
    table = pd.DataFrame(columns=["metric", "slope", "intercept", "r2", "residual_sd", "n"])
    residuals, numbers = pd.DataFrame(index=data.values.index), {}
    if status["status"] == "ok":
        table, residuals, numbers = regress_metrics(data)
    write_csv(table, table_path)
    residuals.index.name = "model"
    write_csv(residuals, residuals_path, index=True)
    write_json({**status, **data.describe(), **numbers}, summary_path)


def residual_pca(merged_path: str, config_block: Mapping, table_path: str, summary_path: str) -> None:
    from oodbench.analysis.pca import residual_pca as run_pca

    config, data = load(merged_path, config_block)
    status = _status(data.n_models, config.min_models_for("pca"), "the residual PCA",
                     len(data.robustness) >= 2, "the residual PCA needs at least two robustness metrics")
    summary = {**status, **data.describe()}
    table = pd.DataFrame(columns=["component", "explained", "ci_low", "ci_high", "null_low",
                                  "null_median", "null_high", "p_value", "significant"])
    if status["status"] == "ok":
        table, numbers = run_pca(
            data.values[data.baseline].to_numpy(),
            data.values[data.robustness].to_numpy(),
            n_components=config.pca_components,
            n_permutations=config.n_permutations,
            n_bootstrap=config.n_bootstrap,
            seed=config.seed,
        )
        summary.update(numbers)
    write_csv(table, table_path)
    write_json(summary, summary_path)


def informativeness(merged_path: str, config_block: Mapping, single_path: str, pairs_path: str,
                    summary_path: str, threads: int = 1) -> None:
    from oodbench.analysis.informativeness import informativeness as run

    config, data = load(merged_path, config_block)
    settings = {"C": 1.0, "top_k": 10, "pair_max_metrics": 25, "n_bootstrap_pairs": None,
                **dict(config.informativeness)}
    grouped = data.groups.dropna()
    counts = grouped.value_counts()
    status = _status(
        len(grouped), config.min_models_for("informativeness"), "the informativeness analysis",
        bool(data.robustness) and len(counts) >= 2 and (counts >= 2).sum() >= 2,
        "needs robustness metrics and at least two groups with two or more models each "
        f"(groups: {counts.to_dict()})",
    )
    summary = {**status, **data.describe(), "groups": counts.to_dict(), "settings": settings}
    single = pd.DataFrame(columns=["metric", "gain_mean", "gain_sd", "accuracy_mean"])
    pairs = pd.DataFrame()
    if status["status"] == "ok":
        single, pairs, numbers = run(
            data.values.loc[grouped.index], grouped, data.baseline, data.robustness,
            n_bootstrap=config.n_bootstrap, seed=config.seed, C=float(settings["C"]),
            pair_max_metrics=int(settings["pair_max_metrics"]),
            n_bootstrap_pairs=settings["n_bootstrap_pairs"], threads=threads,
        )
        summary.update(numbers)
    write_csv(single, single_path)
    pairs.index.name = "metric"
    write_csv(pairs, pairs_path, index=True)
    write_json(summary, summary_path)


def transfer(merged_path: str, config_block: Mapping, points_path: str, correlation_path: str,
             summary_path: str) -> None:
    from oodbench.analysis.transfer import transfer_correlations, transfer_points, transfer_summary

    config, data = load(merged_path, config_block)
    status = _status(
        data.n_models, config.min_models_for("transfer"), "the transfer correlations", bool(data.transfer),
        "no transfer scores in the results: configure analysis.transfer (group -> metric column) "
        "and provide them, e.g. in an external results table",
    )
    points = transfer_points(data)
    summary = {**status, **data.describe()}
    correlations = pd.DataFrame()
    if status["status"] == "ok":
        summary.update(transfer_summary(data, points))
        correlations = transfer_correlations(data)
    write_csv(points, points_path)
    write_csv(correlations, correlation_path, index=True)
    write_json(summary, summary_path)
