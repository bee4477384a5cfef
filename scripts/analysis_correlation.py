"""Rule analyse_correlation: Spearman's rho between metrics (figure 1 left)."""

from oodbench.analysis import run
from oodbench.jobs import setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
run.correlation(sm.input[0], sm.params.analysis, sm.output.matrix, sm.output.summary)
