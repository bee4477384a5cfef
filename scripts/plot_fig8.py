"""Rule plot_fig8: informativeness of every metric and every pair."""

from oodbench.jobs import setup_logging
from oodbench.plots.analysis import plot_fig8

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
plot_fig8(sm.input.single, sm.input.pairs, sm.input.summary, sm.output.pdf, sm.output.png,
          labels=sm.params.labels)
