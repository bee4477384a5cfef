"""Rule analyse_residual_pca: PCA of the regression residuals vs a permutation null (figure 7a)."""

from oodbench.analysis import run
from oodbench.jobs import setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
run.residual_pca(sm.input[0], sm.params.analysis, sm.output.table, sm.output.summary)
