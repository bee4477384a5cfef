"""Rule metrics_table: every score file + model metadata → results/metrics.csv (contract 4)."""

from oodbench.jobs import metrics_table, setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
metrics_table(
    score_paths=list(sm.input.scores),
    logits_paths=list(sm.input.logits),
    models=sm.params.models,
    out_path=sm.output[0],
)
