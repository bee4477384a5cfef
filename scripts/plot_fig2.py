"""Rule plot_fig2: transfer vs ImageNet and robustness."""

from oodbench.jobs import setup_logging
from oodbench.plots.analysis import plot_fig2

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
plot_fig2(sm.input.points, sm.input.correlation, sm.input.summary, sm.output.pdf, sm.output.png,
          labels=sm.params.labels)
