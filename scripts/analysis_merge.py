"""Rule merge_results: results/metrics.csv + external results tables -> one tidy table."""

from oodbench.analysis import run
from oodbench.jobs import setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
run.merge(sm.input.metrics, sm.params.external, sm.output[0])
