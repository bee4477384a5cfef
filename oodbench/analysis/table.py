"""Tidy metrics rows -> the model x metric matrix the analyses work on.

A metric column is named ``<dataset>:<metric>`` or ``<dataset>:<metric>:<subset>`` when the
subset is not ``all``. Which columns are the ImageNet baseline, the robustness metrics and
the transfer scores comes from the ``analysis`` block of the config (see ``AnalysisConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from oodbench.metrics import MODEL_METADATA_COLUMNS


# VTAB-1k group scores; a transfer column absent from the results is simply not analysed.
DEFAULT_TRANSFER = {
    "all": "vtab:mean",
    "natural": "vtab:natural",
    "specialized": "vtab:specialized",
    "structured": "vtab:structured",
}


class AnalysisInputError(ValueError):
    """Input table or analysis configuration that cannot be analysed as given."""


def column_name(dataset: str, metric: str, subset: str = "all") -> str:
    """The matrix column name of one (dataset, metric, subset)."""
    base = f"{dataset}:{metric}"
    return base if subset in ("all", "", None) else f"{base}:{subset}"


@dataclass(frozen=True)
class AnalysisConfig:
    """The ``analysis`` block of the config, with the defaults the schema documents."""

    seed: int = 0
    n_bootstrap: int = 1000
    n_permutations: int = 1000
    resolution: str = "default"
    baseline: str = "imagenet:top1"
    robustness: str | Sequence[str] = "auto"
    auto_metrics: Sequence[str] = ("top1", "pm10")
    exclude: Sequence[str] = ()
    transfer: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TRANSFER))
    labels: Mapping[str, str] = field(default_factory=dict)
    min_metric_coverage: float = 0.5
    pca_components: int = 4
    informativeness: Mapping[str, float | int] = field(default_factory=dict)
    min_models: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, block: Mapping | None) -> "AnalysisConfig":
        block = dict(block or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(block) - known)
        if unknown:
            raise AnalysisInputError(
                f"config analysis: unknown key(s) {unknown}; known keys are {sorted(known)}"
            )
        if "resolution" in block:
            block["resolution"] = str(block["resolution"])
        return cls(**block)

    def min_models_for(self, statistic: str) -> int:
        defaults = {"correlation": 3, "regression": 3, "pca": 5, "informativeness": 8, "transfer": 3}
        return int(self.min_models.get(statistic, defaults[statistic]))

    def label(self, column: str) -> str:
        return self.labels.get(column, column)


@dataclass
class AnalysisData:
    """Complete-case model x metric matrix plus the roles of its columns."""

    values: pd.DataFrame  # index: model, columns: metric columns (baseline first)
    baseline: str
    robustness: list[str]
    transfer: dict[str, str]  # transfer group -> column (only those present)
    groups: pd.Series  # model -> group (may hold NaN)
    dropped_metrics: list[str]
    dropped_models: list[str]

    @property
    def n_models(self) -> int:
        return len(self.values)

    def describe(self) -> dict:
        return {
            "n_models": self.n_models,
            "models": list(self.values.index),
            "baseline": self.baseline,
            "robustness_metrics": self.robustness,
            "transfer_metrics": self.transfer,
            "dropped_metrics": self.dropped_metrics,
            "dropped_models": self.dropped_models,
        }


def wide_matrix(tidy: pd.DataFrame, resolution: str = "default") -> pd.DataFrame:
    """Pivot tidy rows of one resolution to models x metric columns.

    Two rows for the same model and column are an error: silently averaging numbers from
    two sources would hide a configuration mistake.
    """
    rows = tidy[tidy["resolution"].astype(str) == str(resolution)]
    columns = [column_name(d, m, s) for d, m, s in zip(rows["dataset"], rows["metric"], rows["subset"])]
    rows = rows.assign(column=columns)
    duplicated = rows.duplicated(["model", "column"], keep=False)
    if duplicated.any():
        clash = rows.loc[duplicated, ["model", "column", "source"]].head(6)
        raise AnalysisInputError(
            "the metrics table holds several values for the same model and metric "
            f"(resolution {resolution}):\n{clash.to_string(index=False)}\n"
            "remove the duplicate rows or give the external table's models distinct names"
        )
    if rows.empty:
        return pd.DataFrame(index=pd.Index([], name="model"), dtype=float)
    wide = rows.pivot(index="model", columns="column", values="value")
    wide.columns.name = None
    return wide.sort_index()


def model_metadata(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per model: group, params, pretraining_data.

    A model whose rows disagree on a metadata field is an error naming the model.
    """
    meta = tidy[["model", *MODEL_METADATA_COLUMNS]].drop_duplicates()
    result = {}
    for column in MODEL_METADATA_COLUMNS:
        per_model = meta[["model", column]].dropna().drop_duplicates()
        conflicts = per_model["model"][per_model["model"].duplicated()]
        if not conflicts.empty:
            name = conflicts.iloc[0]
            values = per_model.loc[per_model["model"] == name, column].tolist()
            raise AnalysisInputError(
                f"model {name!r} has conflicting {column!r} values {values} across its rows"
            )
        result[column] = per_model.set_index("model")[column]
    return pd.DataFrame(result).reindex(sorted(tidy["model"].unique()))


def resolve_robustness(wide: pd.DataFrame, config: AnalysisConfig) -> list[str]:
    """The robustness metric columns: the configured list, or ``auto``.

    ``auto`` takes every whole-dataset column (no subset) whose metric is in
    ``auto_metrics``, except the baseline, the transfer columns and ``exclude``.
    """
    reserved = {config.baseline, *config.transfer.values(), *config.exclude}
    if isinstance(config.robustness, str):
        if config.robustness != "auto":
            raise AnalysisInputError(
                f"config analysis.robustness: {config.robustness!r} is neither 'auto' nor a list"
            )
        chosen = [
            c
            for c in wide.columns
            if c not in reserved and c.count(":") == 1 and c.split(":")[1] in set(config.auto_metrics)
        ]
        return sorted(chosen)
    reserved_listed = [c for c in config.robustness if c in reserved]
    if reserved_listed:
        raise AnalysisInputError(
            f"config analysis.robustness lists {reserved_listed}, which is the baseline, a "
            "transfer score or excluded; remove it from the list"
        )
    missing = [c for c in config.robustness if c not in wide.columns]
    if missing:
        raise AnalysisInputError(
            f"config analysis.robustness names metric column(s) {missing} that no results "
            f"table provides at resolution {config.resolution}; available: {sorted(wide.columns)}"
        )
    return list(config.robustness)


def prepare(tidy: pd.DataFrame, config: AnalysisConfig) -> AnalysisData:
    """Build the complete-case matrix: baseline, robustness and transfer columns.

    Metrics known for fewer than ``min_metric_coverage`` of the models with a baseline
    value are dropped, then models missing any remaining value; both are recorded.
    """
    wide = wide_matrix(tidy, config.resolution)
    if wide.empty:  # no results at all: every analysis reports "no models" instead of failing
        empty = pd.DataFrame(columns=[config.baseline], dtype=float, index=pd.Index([], name="model"))
        return AnalysisData(empty, config.baseline, [], {}, pd.Series(dtype=object), [], [])
    if config.baseline not in wide.columns:
        raise AnalysisInputError(
            f"config analysis.baseline {config.baseline!r} is not in the results at resolution "
            f"{config.resolution!r}; available metric columns: {sorted(wide.columns)}"
        )
    wide = wide[wide[config.baseline].notna()]
    robustness = resolve_robustness(wide, config)
    transfer = {g: c for g, c in config.transfer.items() if c in wide.columns}
    wanted = [config.baseline, *robustness, *dict.fromkeys(transfer.values())]
    matrix = wide[wanted]
    coverage = matrix.notna().mean(axis=0) if len(matrix) else pd.Series(1.0, index=wanted)
    dropped_metrics = [c for c in wanted if coverage[c] < config.min_metric_coverage]
    matrix = matrix.drop(columns=dropped_metrics)
    complete = matrix.notna().all(axis=1)
    dropped_models = list(matrix.index[~complete])
    matrix = matrix[complete]
    groups = model_metadata(tidy)["group"].reindex(matrix.index)
    return AnalysisData(
        values=matrix.astype(float),
        baseline=config.baseline,
        robustness=[c for c in robustness if c in matrix.columns],
        transfer={g: c for g, c in transfer.items() if c in matrix.columns},
        groups=groups,
        dropped_metrics=dropped_metrics,
        dropped_models=dropped_models,
    )


def rankdata_columns(values: np.ndarray) -> np.ndarray:
    """Average ranks along axis -2 (models), for any leading batch axes."""
    from scipy.stats import rankdata

    return rankdata(values, axis=-2, method="average")
