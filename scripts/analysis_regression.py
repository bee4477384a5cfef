"""Rule analyse_regression: every robustness metric regressed on ImageNet accuracy."""

from oodbench.analysis import run
from oodbench.jobs import setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
run.regression(sm.input[0], sm.params.analysis, sm.output.table, sm.output.residuals, sm.output.summary)
