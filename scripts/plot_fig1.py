"""Rule plot_fig1: metric correlation and informativeness."""

from oodbench.jobs import setup_logging
from oodbench.plots.analysis import plot_fig1

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
plot_fig1(sm.input.correlation, sm.input.correlation_summary, sm.input.single, sm.input.informativeness,
          sm.output.pdf, sm.output.png, labels=sm.params.labels, top_k=sm.params.top_k)
