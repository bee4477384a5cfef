"""Rule plot_fig7a: residual PCA vs permutation null."""

from oodbench.jobs import setup_logging
from oodbench.plots.analysis import plot_fig7a

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
plot_fig7a(sm.input.table, sm.input.summary, sm.output.pdf, sm.output.png)
