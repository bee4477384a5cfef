"""Section 3 analyses: known-answer tables, external tables, figures, and the workflow with
only an external results table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oodbench.analysis import run
from oodbench.analysis.correlation import spearman_matrix
from oodbench.analysis.external import ExternalTable, load_all, merge_results, read_external
from oodbench.analysis.informativeness import informativeness
from oodbench.analysis.pca import residual_pca
from oodbench.analysis.regression import regress_metrics
from oodbench.analysis.table import AnalysisConfig, AnalysisInputError, prepare, wide_matrix

FIGURES = ["fig1_metric_correlation", "fig2_transfer_robustness", "fig7a_residual_pca", "fig8_informativeness"]


def tidy_from_wide(wide: pd.DataFrame, groups=None, source: str = "pipeline") -> pd.DataFrame:
    """Models x '<dataset>:<metric>' frame -> metrics-table rows (contracts §4)."""
    long = wide.rename_axis("model").reset_index().melt(id_vars="model", var_name="column", value_name="value")
    parts = long["column"].str.split(":", expand=True)
    long = long.assign(dataset=parts[0], metric=parts[1], resolution="default", subset="all", n=100,
                       params=np.nan, pretraining_data="imagenet", source=source)
    long["group"] = long["model"].map(groups) if groups is not None else "g"
    return long.drop(columns="column")


def linear_metrics(n_models: int, noise_sd: np.ndarray, seed: int = 0, slope: float = 0.8):
    rng = np.random.default_rng(seed)
    imagenet = rng.uniform(0.5, 0.9, n_models)
    noise = rng.normal(0.0, 1.0, (n_models, len(noise_sd))) * noise_sd
    values = 0.1 + slope * imagenet[:, None] + noise
    wide = pd.DataFrame(values, columns=[f"set{j}:top1" for j in range(len(noise_sd))],
                        index=[f"m{i:03d}" for i in range(n_models)])
    wide.insert(0, "imagenet:top1", imagenet)
    return wide


# --- regression and correlation -------------------------------------------------------------

def test_r2_matches_the_variance_explained_by_construction():
    noise_sd = np.array([0.01, 0.05, 0.1, 0.2])
    wide = linear_metrics(4000, noise_sd)
    data = prepare(tidy_from_wide(wide), AnalysisConfig())
    table, residuals, summary = regress_metrics(data)
    explained = 0.8**2 * 0.4**2 / 12  # slope² · var(Uniform(0.5, 0.9))
    truth = explained / (explained + noise_sd**2)
    fitted = table.set_index("metric").loc[[f"set{j}:top1" for j in range(4)], "r2"].to_numpy()
    np.testing.assert_allclose(fitted, truth, atol=0.03)
    assert summary["mean_r2"] == pytest.approx(truth.mean(), abs=0.02)
    np.testing.assert_allclose(table["slope"], 0.8, atol=0.05)
    assert residuals.shape == (4000, 4)


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    frame = pd.DataFrame({"a": [1, 2, 2, 3, 5, 4], "b": [2, 1, 4, 4, 6, 5], "c": [6, 5, 4, 3, 2, 1]})
    expected = spearmanr(frame.to_numpy()).statistic
    np.testing.assert_allclose(spearman_matrix(frame).to_numpy(), expected, atol=1e-12)


# --- residual PCA ----------------------------------------------------------------------------

def test_only_the_planted_common_factor_is_above_the_null_band():
    rng = np.random.default_rng(1)
    n, p = 80, 10
    wide = linear_metrics(n, np.zeros(p), seed=1)
    factor = rng.normal(size=n)
    loadings = rng.uniform(0.6, 1.0, p)
    for j in range(p):
        wide[f"set{j}:top1"] += 0.03 * (loadings[j] * factor + 0.6 * rng.normal(size=n))
    data = prepare(tidy_from_wide(wide), AnalysisConfig())
    table, summary = residual_pca(data.values[data.baseline].to_numpy(),
                                  data.values[data.robustness].to_numpy(), 4, 300, 200, seed=0)
    assert table["significant"].tolist() == [True, False, False, False]
    assert summary["n_significant_components"] == 1
    assert table.loc[0, "ci_low"] <= table.loc[0, "explained"] <= table.loc[0, "ci_high"]
    assert table.loc[0, "ci_low"] > table.loc[0, "null_high"]


def test_no_component_is_significant_without_shared_structure():
    wide = linear_metrics(80, np.full(10, 0.03), seed=2)
    data = prepare(tidy_from_wide(wide), AnalysisConfig())
    _, summary = residual_pca(data.values[data.baseline].to_numpy(),
                              data.values[data.robustness].to_numpy(), 4, 300, 50, seed=0)
    assert summary["n_significant_components"] == 0


# --- informativeness ---------------------------------------------------------------------------

def planted_groups(n_models: int = 60, n_groups: int = 4, seed: int = 3):
    rng = np.random.default_rng(seed)
    groups = pd.Series([f"g{i % n_groups}" for i in range(n_models)], index=[f"m{i:03d}" for i in range(n_models)])
    code = pd.factorize(groups, sort=True)[0]
    imagenet = rng.uniform(0.6, 0.8, n_models)
    wide = pd.DataFrame({"imagenet:top1": imagenet}, index=groups.index)
    wide["separating:top1"] = 0.1 + 0.15 * code + rng.normal(0, 0.01, n_models)
    for j in range(3):
        wide[f"plain{j}:top1"] = 0.9 * imagenet + rng.normal(0, 0.01, n_models)
    return wide, groups


def test_a_metric_that_separates_the_groups_gains_accuracy_and_the_others_do_not():
    wide, groups = planted_groups()
    metrics = [c for c in wide.columns if c != "imagenet:top1"]
    single, pairs, summary = informativeness(wide, groups, "imagenet:top1", metrics, n_bootstrap=100, seed=0)
    gains = single.set_index("metric")["gain_mean"]
    assert gains["separating:top1"] > 0.4
    for j in range(3):
        assert abs(gains[f"plain{j}:top1"]) < 0.1
    assert summary["best_single"]["metric"] == "separating:top1"
    assert pairs.loc["separating:top1", "plain0:top1"] > 0.4
    assert abs(pairs.loc["plain0:top1", "plain1:top1"]) < 0.1
    assert pairs.loc["separating:top1", "separating:top1"] == pytest.approx(gains["separating:top1"])


def test_batched_logistic_regression_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    from oodbench.analysis.informativeness import _Chunk, fit_ovr_logistic

    rng = np.random.default_rng(4)
    n = 50
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    labels = (X[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(int)
    counts = rng.integers(0, 3, size=(1, n))
    theta = fit_ovr_logistic(X, _Chunk(labels, 2, counts), C=0.5)
    reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(X[:, 1:], labels, sample_weight=counts[0])
    np.testing.assert_allclose(theta[0, 1, 1:], reference.coef_[0], atol=1e-3)
    np.testing.assert_allclose(theta[0, 1, 0], reference.intercept_[0], atol=1e-3)


# --- tables and external results --------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def pipeline_rows() -> pd.DataFrame:
    wide = pd.DataFrame({"imagenet:top1": [0.7, 0.8]}, index=["piped-a", "piped-b"])
    return tidy_from_wide(wide, {"piped-a": "ours", "piped-b": "ours"})


def test_external_tables_in_both_formats_merge_with_pipeline_rows(tmp_path):
    tidy = write(tmp_path / "tidy.csv", "# comment line\nmodel,dataset,metric,value,group\n"
                 "pub-a,imagenet,top1,0.61,published\npub-a,objectnet,top1,0.2,published\n")
    wide = write(tmp_path / "wide.csv", "Name,Family,ImageNet,ObjectNet,Extra\n"
                 "lb-a,board,75.0,30.0,x\nlb-b,board,80.0,,y\n")
    external = [
        ExternalTable.from_mapping({"name": "paper", "path": str(tidy)}),
        ExternalTable.from_mapping({"name": "board", "path": str(wide), "format": "wide", "value_scale": 0.01,
                                    "model_column": "Name", "metadata": {"group": "Family"},
                                    "columns": {"ImageNet": "imagenet:top1", "ObjectNet": "objectnet:top1"}}),
    ]
    merged = merge_results(pipeline_rows(), [read_external(e) for e in external])
    matrix = wide_matrix(merged)
    assert matrix.loc["lb-a", "objectnet:top1"] == pytest.approx(0.30)
    assert matrix.loc["lb-b", "imagenet:top1"] == pytest.approx(0.80)
    assert np.isnan(matrix.loc["lb-b", "objectnet:top1"])  # an empty cell is no result
    assert matrix.loc["piped-a", "imagenet:top1"] == 0.7
    sources = merged.groupby("model")["source"].first()
    assert sources["pub-a"] == "paper" and sources["lb-a"] == "board" and sources["piped-b"] == "pipeline"
    assert merged.loc[merged["model"] == "lb-a", "group"].unique().tolist() == ["board"]


def test_a_name_clash_is_an_error_naming_model_metric_and_sources(tmp_path):
    clash = write(tmp_path / "clash.csv", "model,dataset,metric,value\npiped-a,imagenet,top1,0.7\n")
    with pytest.raises(AnalysisInputError, match=r"piped-a.*imagenet:top1.*\['pipeline', 'republished'\]"):
        merge_results(pipeline_rows(), [read_external(ExternalTable("republished", str(clash)))])


def test_missing_columns_are_errors_naming_them(tmp_path):
    tidy = write(tmp_path / "tidy.csv", "model,dataset,metric\npub-a,imagenet,top1\n")
    with pytest.raises(AnalysisInputError, match=r"missing column\(s\) \['value'\]"):
        read_external(ExternalTable("paper", str(tidy)))
    wide = write(tmp_path / "wide.csv", "model,ImageNet\npub-a,70\n")
    spec = ExternalTable("board", str(wide), format="wide", columns={"ImageNet": "imagenet:top1", "ObjNet": "objectnet:top1"})
    with pytest.raises(AnalysisInputError, match=r"missing column\(s\) \['ObjNet'\]"):
        read_external(spec)
    typo = write(tmp_path / "typo.csv", "model,dataset,metric,value,gruop\npub-a,imagenet,top1,0.7,x\n")
    with pytest.raises(AnalysisInputError, match=r"unknown column\(s\) \['gruop'\]"):
        read_external(ExternalTable("paper", str(typo)))


def test_missing_baseline_and_unknown_robustness_metric_are_named():
    tidy = pipeline_rows()
    with pytest.raises(AnalysisInputError, match="'imagenet_v2:top1'"):
        prepare(tidy, AnalysisConfig(baseline="imagenet_v2:top1"))
    with pytest.raises(AnalysisInputError, match=r"\['objectnet:top1'\]"):
        prepare(tidy, AnalysisConfig(robustness=["objectnet:top1"]))


def test_sparse_metrics_and_incomplete_models_are_dropped_and_reported():
    wide = linear_metrics(10, np.full(2, 0.01))
    wide.loc[wide.index[:8], "set1:top1"] = np.nan  # known for 2 of 10 models: dropped
    wide.loc[wide.index[0], "set0:top1"] = np.nan  # one gap: that model is dropped
    data = prepare(tidy_from_wide(wide).dropna(subset=["value"]), AnalysisConfig())
    assert data.dropped_metrics == ["set1:top1"]
    assert data.dropped_models == [wide.index[0]]
    assert data.robustness == ["set0:top1"] and data.n_models == 9


# --- analysis jobs and figures ---------------------------------------------------------------

def analysis_config(**extra) -> dict:
    return {"n_bootstrap": 60, "n_permutations": 60, "transfer": {"all": "vtab:mean", "natural": "vtab:natural"},
            "labels": {"imagenet:top1": "ImageNet"}, **extra}


def run_everything(merged: Path, out: Path, config: dict) -> dict:
    a = out / "analysis"
    run.correlation(str(merged), config, str(a / "spearman.csv"), str(a / "spearman.json"))
    run.regression(str(merged), config, str(a / "regression.csv"), str(a / "residuals.csv"), str(a / "regression.json"))
    run.residual_pca(str(merged), config, str(a / "pca.csv"), str(a / "pca.json"))
    run.informativeness(str(merged), config, str(a / "single.csv"), str(a / "pairs.csv"), str(a / "inf.json"))
    run.transfer(str(merged), config, str(a / "points.csv"), str(a / "tcorr.csv"), str(a / "transfer.json"))
    from oodbench.plots import analysis as plots

    f = out / "figures"
    plots.plot_fig1(str(a / "spearman.csv"), str(a / "spearman.json"), str(a / "single.csv"), str(a / "inf.json"),
                    str(f / "fig1.pdf"), str(f / "fig1.png"), labels=config["labels"])
    plots.plot_fig2(str(a / "points.csv"), str(a / "tcorr.csv"), str(a / "transfer.json"),
                    str(f / "fig2.pdf"), str(f / "fig2.png"), labels=config["labels"])
    plots.plot_fig7a(str(a / "pca.csv"), str(a / "pca.json"), str(f / "fig7a.pdf"), str(f / "fig7a.png"))
    plots.plot_fig8(str(a / "single.csv"), str(a / "pairs.csv"), str(a / "inf.json"),
                    str(f / "fig8.pdf"), str(f / "fig8.png"), labels=config["labels"])
    for name in ("fig1", "fig2", "fig7a", "fig8"):
        for ext in ("pdf", "png"):
            assert (f / f"{name}.{ext}").stat().st_size > 1000
    assert not [p for p in out.rglob(".*") if p.is_file()], "a temporary file was left behind"
    names = {"spearman": "spearman", "regression": "regression", "pca": "pca", "inf": "inf", "transfer": "transfer"}
    return {k: json.loads((a / f"{v}.json").read_text()) for k, v in names.items()}


def test_enough_models_give_numbers_and_figures(tmp_path):
    wide, groups = planted_groups(n_models=24)
    wide["vtab:mean"] = 0.5 * wide["imagenet:top1"] + 0.2
    wide["vtab:natural"] = 0.7 * wide["imagenet:top1"]
    merged = tmp_path / "merged.csv"
    tidy_from_wide(wide, groups).to_csv(merged, index=False)
    summaries = run_everything(merged, tmp_path, analysis_config())
    assert all(s["status"] == "ok" for s in summaries.values()), summaries
    assert summaries["transfer"]["rho_transfer_imagenet"] == pytest.approx(1.0)
    assert summaries["spearman"]["n_models"] == 24
    corr = pd.read_csv(tmp_path / "analysis" / "tcorr.csv", index_col=0)
    assert list(corr.index) == ["all", "natural"] and corr.loc["all", "imagenet:top1"] == pytest.approx(1.0)


def test_three_models_render_figures_with_notes_instead_of_failing(tmp_path):
    wide = linear_metrics(3, np.full(3, 0.01))
    merged = tmp_path / "merged.csv"
    tidy_from_wide(wide, {m: g for m, g in zip(wide.index, "abc")}).to_csv(merged, index=False)
    summaries = run_everything(merged, tmp_path, analysis_config())
    assert summaries["spearman"]["status"] == "ok"  # computable with 3, flagged in the figure
    assert summaries["pca"]["status"] == "insufficient_models"
    assert summaries["inf"]["status"] == "insufficient_models"
    assert summaries["transfer"]["status"] == "not_available"
    assert "analysis.transfer" in summaries["transfer"]["note"]


def test_merge_job_with_only_an_external_table(tmp_path):
    header_only = write(tmp_path / "metrics.csv", "model,dataset,resolution,metric,subset,value,n,group,params,"
                        "pretraining_data,source\n")
    table = write(tmp_path / "pub.csv", "model,dataset,metric,value\np1,imagenet,top1,0.5\n")
    run.merge(str(header_only), [{"name": "pub", "path": str(table)}], str(tmp_path / "merged.csv"))
    merged = pd.read_csv(tmp_path / "merged.csv")
    assert merged[["model", "source", "resolution", "subset"]].values.tolist() == [["p1", "pub", "default", "all"]]


def test_demo_external_example_tables_load():
    import yaml

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "demo/external/config.yaml").read_text())
    entries = [{**e, "path": str(repo / e["path"])} for e in config["external_results"]]
    merged = load_all(None, entries)
    assert merged["model"].str.startswith("fictional-").all()
    assert merged["value"].between(0, 1).all()
    assert set(merged["source"]) == {"example_tidy", "example_wide"}


# --- the workflow with only an external results table ----------------------------------------

@pytest.mark.workflow
def test_workflow_makes_all_four_figures_from_an_external_table_only(tmp_path):
    from conftest import run_snakemake, write_config

    wide, groups = planted_groups(n_models=16)
    wide["vtab:mean"] = 0.5 * wide["imagenet:top1"] + 0.2
    tidy_from_wide(wide, groups).drop(columns=["resolution", "subset", "n", "params", "pretraining_data", "source"]) \
        .to_csv(tmp_path / "published.csv", index=False)
    config = {
        "models": {},
        "datasets": {},
        "resolutions": ["default"],
        "external_results": [{"name": "published", "path": "published.csv", "format": "tidy"}],
        "analysis": {"n_bootstrap": 50, "n_permutations": 50, "transfer": {"all": "vtab:mean"}},
    }
    write_config(tmp_path, config)
    targets = [f"results/figures/{name}.{ext}" for name in FIGURES for ext in ("pdf", "png")]
    result = run_snakemake(tmp_path, *targets)
    assert result.returncode == 0, result.output[-4000:]
    for target in targets:
        assert (tmp_path / target).stat().st_size > 1000
    summary = json.loads((tmp_path / "results/analysis/informativeness.json").read_text())
    assert summary["status"] == "ok" and summary["best_single"]["metric"] == "separating:top1"


def test_no_results_at_all_give_figures_that_say_so(tmp_path):
    merged = write(tmp_path / "merged.csv", "model,dataset,resolution,metric,subset,value,n,group,params,"
                   "pretraining_data,source\n")
    summaries = run_everything(merged, tmp_path, analysis_config())
    assert {s["status"] for s in summaries.values()} == {"insufficient_models"}
    assert all(s["n_models"] == 0 for s in summaries.values())


def test_a_group_missing_from_a_bootstrap_sample_is_never_predicted_and_fits_stay_finite():
    from oodbench.analysis.informativeness import _Chunk, fit_ovr_logistic, oob_accuracy

    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 2], 10)
    X = np.column_stack([np.ones(30), labels + 0.3 * rng.normal(size=30)])
    counts = np.where(labels == 2, 0, 1)[None]  # group 2 not drawn: all of it out-of-bag
    chunk = _Chunk(labels, 3, counts)
    theta = fit_ovr_logistic(X, chunk, C=1.0)
    assert np.isfinite(theta).all()
    scores = theta[0] @ X.T
    assert (scores.argmax(axis=0) != 2).all()
    assert oob_accuracy(X, theta, chunk)[0] == 0.0  # only group-2 models were held out
