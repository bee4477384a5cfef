"""Benchmark of the Section 3 analyses at scale (not a test): prints wall times.

    .venv/bin/python scripts/bench_analysis.py [--models 300] [--metrics 100] [--samples 1000]

Synthetic table: ImageNet accuracy per model, every metric = a linear function of it plus
group effects and noise, 12 groups. Target: everything under a minute on 2 cores.
"""

import argparse
import time

import numpy as np
import pandas as pd

from oodbench.analysis.correlation import correlation_summary, spearman_matrix
from oodbench.analysis.informativeness import informativeness
from oodbench.analysis.pca import residual_pca
from oodbench.analysis.regression import regress_metrics
from oodbench.analysis.table import AnalysisConfig, prepare
from oodbench.analysis.transfer import transfer_correlations, transfer_points, transfer_summary


def synthetic_tidy(n_models: int, n_metrics: int, n_groups: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_models)
    imagenet = rng.uniform(0.6, 0.9, n_models)
    effects = rng.normal(0, 0.02, (n_groups, n_metrics + 1))
    values = 0.2 + 0.7 * imagenet[:, None] + effects[groups] + rng.normal(0, 0.02, (n_models, n_metrics + 1))
    names = [f"set{j:03d}:top1" for j in range(n_metrics)] + ["vtab:mean"]
    wide = pd.DataFrame(np.column_stack([imagenet, values]), columns=["imagenet:top1", *names])
    wide["model"] = [f"m{i:04d}" for i in range(n_models)]
    tidy = wide.melt(id_vars="model", var_name="column", value_name="value")
    parts = tidy["column"].str.split(":", expand=True)
    tidy = tidy.assign(dataset=parts[0], metric=parts[1], resolution="default", subset="all", n=1000,
                       params=np.nan, pretraining_data="", source="bench")
    tidy["group"] = tidy["model"].map(dict(zip(wide["model"], [f"g{g}" for g in groups])))
    return tidy.drop(columns="column")


def timed(label, fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    print(f"{label:<34s} {time.perf_counter() - start:7.2f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--samples", type=int, default=1000, help="bootstraps and permutations")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    total = time.perf_counter()
    tidy = synthetic_tidy(args.models, args.metrics, args.groups)
    config = AnalysisConfig(n_bootstrap=args.samples, n_permutations=args.samples, transfer={"all": "vtab:mean"})
    data = timed("prepare (tidy -> matrix)", prepare, tidy, config)
    rho = timed("spearman matrix", spearman_matrix, data.values[[data.baseline, *data.robustness]])
    correlation_summary(data, rho)
    timed("regressions", regress_metrics, data)
    timed(f"residual PCA ({args.samples} perm + boot)", residual_pca,
          data.values[data.baseline].to_numpy(), data.values[data.robustness].to_numpy(),
          4, args.samples, args.samples, 0)
    timed(f"informativeness ({args.samples} boot)", informativeness, data.values, data.groups,
          data.baseline, data.robustness, args.samples, 0, threads=args.threads)
    points = timed("transfer points", transfer_points, data)
    transfer_summary(data, points)
    timed("transfer correlations", transfer_correlations, data)
    print(f"{'total':<34s} {time.perf_counter() - total:7.2f} s "
          f"({args.models} models x {args.metrics} metrics, {args.samples} samples)")


if __name__ == "__main__":
    main()
