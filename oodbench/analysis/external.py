"""Published results tables (papers, leaderboards) merged with the pipeline's metrics.

Two formats, declared per table under ``external_results:`` in the config:

``tidy``  one row per (model, metric). Required columns: ``model, dataset, metric, value``.
          Optional: ``resolution`` (default ``default``), ``subset`` (default ``all``),
          ``n``, ``group``, ``params``, ``pretraining_data``. Any other column is an error.
``wide``  one row per model, one column per metric. ``columns:`` maps each CSV header to a
          metric column name ``<dataset>:<metric>[:<subset>]``; ``model_column`` (default
          ``model``) names the model column; ``metadata:`` maps ``group`` / ``params`` /
          ``pretraining_data`` to CSV headers. Unmapped CSV columns are ignored (published
          tables carry many), but every mapped header must exist.

Both: lines starting with ``#`` are comments; ``value_scale`` (default 1) multiplies every
value, e.g. 0.01 for tables in percent (the pipeline stores accuracies as fractions).
Every row gets ``source = <name>``. A (model, dataset, resolution, metric, subset) that two
sources both provide is an error naming the model, the metric and both sources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from oodbench.analysis.table import AnalysisInputError
from oodbench.metrics import (
    KEY_COLUMNS,
    METRICS_COLUMNS,
    MODEL_METADATA_COLUMNS,
    PIPELINE_SOURCE,
    check_metrics_table,
    read_metrics,
)

TIDY_REQUIRED = ["model", "dataset", "metric", "value"]
TIDY_OPTIONAL = {"resolution": "default", "subset": "all", "n": None,
                 **dict.fromkeys(MODEL_METADATA_COLUMNS)}


@dataclass(frozen=True)
class ExternalTable:
    """One entry of ``external_results:``."""

    name: str
    path: str
    format: str = "tidy"
    columns: Mapping[str, str] = field(default_factory=dict)
    model_column: str = "model"
    metadata: Mapping[str, str] = field(default_factory=dict)
    resolution: str = "default"
    value_scale: float = 1.0

    @classmethod
    def from_mapping(cls, entry: Mapping) -> "ExternalTable":
        entry = dict(entry)
        for key in ("name", "path"):
            if key not in entry:
                raise AnalysisInputError(f"config external_results entry {entry}: missing key {key!r}")
        unknown = sorted(set(entry) - set(cls.__dataclass_fields__))
        if unknown:
            raise AnalysisInputError(
                f"config external_results[{entry['name']!r}]: unknown key(s) {unknown}"
            )
        if entry.get("format", "tidy") not in ("tidy", "wide"):
            raise AnalysisInputError(
                f"config external_results[{entry['name']!r}].format must be 'tidy' or 'wide', "
                f"not {entry['format']!r}"
            )
        if entry["name"] == PIPELINE_SOURCE:
            raise AnalysisInputError(
                f"config external_results: the name {PIPELINE_SOURCE!r} is reserved for the "
                "pipeline's own rows; choose another name"
            )
        entry["resolution"] = str(entry.get("resolution", "default"))
        return cls(**entry)


def _read_csv(path: str | Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise AnalysisInputError(f"external results table {path} does not exist")
    return pd.read_csv(path, comment="#", skipinitialspace=True, dtype=str)


def _require_columns(table: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise AnalysisInputError(
            f"{where}: missing column(s) {missing}; the file has {list(table.columns)}"
        )


def read_tidy(spec: ExternalTable) -> pd.DataFrame:
    table = _read_csv(spec.path)
    where = f"external table {spec.name!r} ({spec.path})"
    _require_columns(table, TIDY_REQUIRED, where)
    unknown = sorted(set(table.columns) - set(TIDY_REQUIRED) - set(TIDY_OPTIONAL))
    if unknown:
        raise AnalysisInputError(
            f"{where}: unknown column(s) {unknown}; the tidy format allows "
            f"{TIDY_REQUIRED + list(TIDY_OPTIONAL)}"
        )
    for column, default in TIDY_OPTIONAL.items():
        if column not in table.columns:
            table[column] = default
    table["resolution"] = table["resolution"].fillna(spec.resolution)
    return table


def read_wide(spec: ExternalTable) -> pd.DataFrame:
    table = _read_csv(spec.path)
    where = f"external table {spec.name!r} ({spec.path})"
    if not spec.columns:
        raise AnalysisInputError(
            f"config external_results[{spec.name!r}]: a wide table needs a 'columns' mapping "
            "from CSV header to '<dataset>:<metric>[:<subset>]'"
        )
    bad_meta = sorted(set(spec.metadata) - set(MODEL_METADATA_COLUMNS))
    if bad_meta:
        raise AnalysisInputError(
            f"config external_results[{spec.name!r}].metadata: unknown field(s) {bad_meta}; "
            f"allowed: {MODEL_METADATA_COLUMNS}"
        )
    _require_columns(table, [spec.model_column, *spec.columns, *spec.metadata.values()], where)
    parts = {header: _split_metric_name(target, spec) for header, target in spec.columns.items()}
    long = table.melt(
        id_vars=[spec.model_column, *spec.metadata.values()],
        value_vars=list(spec.columns),
        var_name="header",
        value_name="value",
    ).rename(columns={spec.model_column: "model", **{v: k for k, v in spec.metadata.items()}})
    long = long[long["value"].notna() & (long["value"].astype(str).str.strip() != "")]
    long["dataset"] = long["header"].map(lambda h: parts[h][0])
    long["metric"] = long["header"].map(lambda h: parts[h][1])
    long["subset"] = long["header"].map(lambda h: parts[h][2])
    long["resolution"] = spec.resolution
    long["n"] = None
    for column in MODEL_METADATA_COLUMNS:
        if column not in long.columns:
            long[column] = None
    return long.drop(columns="header")


def _split_metric_name(target: str, spec: ExternalTable) -> tuple[str, str, str]:
    pieces = str(target).split(":", 2)
    if len(pieces) < 2 or not all(pieces):
        raise AnalysisInputError(
            f"config external_results[{spec.name!r}].columns: {target!r} is not of the form "
            "'<dataset>:<metric>' or '<dataset>:<metric>:<subset>'"
        )
    return pieces[0], pieces[1], pieces[2] if len(pieces) == 3 else "all"


def read_external(spec: ExternalTable) -> pd.DataFrame:
    """One external table as metrics-table rows (contracts §4), ``source`` = its name."""
    table = read_tidy(spec) if spec.format == "tidy" else read_wide(spec)
    where = f"external table {spec.name!r} ({spec.path})"
    values = pd.to_numeric(table["value"], errors="coerce")
    bad = table.loc[values.isna(), ["model", "dataset", "metric", "value"]]
    if not bad.empty:
        raise AnalysisInputError(f"{where}: non-numeric value(s):\n{bad.head(5).to_string(index=False)}")
    table["value"] = values * spec.value_scale
    table["params"] = pd.to_numeric(table["params"], errors="coerce")
    table["n"] = pd.to_numeric(table["n"], errors="coerce")
    table["source"] = spec.name
    return check_metrics_table(table, where)


def merge_results(pipeline: pd.DataFrame | None, externals: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate pipeline rows and external rows (as ``read_metrics`` / ``read_external``
    return them: checked, normalised); a key provided twice is an error."""
    parts = [p for p in [pipeline, *externals] if p is not None and not p.empty]
    if not parts:
        return pd.DataFrame(columns=METRICS_COLUMNS)
    # Both kinds of part went through check_metrics_table: resolution and subset are text.
    merged = pd.concat(parts, ignore_index=True)
    clash = merged.duplicated(KEY_COLUMNS, keep=False)
    if clash.any():
        rows = merged.loc[clash, [*KEY_COLUMNS, "source"]]
        first = rows.iloc[0]
        same = rows[(rows[KEY_COLUMNS] == first[KEY_COLUMNS]).all(axis=1)]
        raise AnalysisInputError(
            f"name clash: model {first['model']!r}, metric "
            f"{first['dataset']}:{first['metric']} (subset {first['subset']}, resolution "
            f"{first['resolution']}) is provided by {sorted(same['source'].unique())} "
            f"({int(clash.sum())} clashing rows in all); rename the model in one of the tables "
            "or drop the duplicate rows"
        )
    return merged[METRICS_COLUMNS]


def load_all(metrics_path: str | Path | None, external_entries: Sequence[Mapping]) -> pd.DataFrame:
    """Read the pipeline's metrics table (if any) and every configured external table."""
    pipeline = read_metrics(metrics_path) if metrics_path else None
    specs = [ExternalTable.from_mapping(e) for e in external_entries]
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AnalysisInputError(f"config external_results: name(s) {repeated} used more than once")
    return merge_results(pipeline, [read_external(s) for s in specs])
