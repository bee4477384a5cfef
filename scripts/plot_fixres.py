"""Rules plot_fig4_fixres / plot_fig10_fixres / plot_fig11_fixres: metrics.csv → one figure."""

from oodbench.jobs import setup_logging
from oodbench.metrics import read_metrics
from oodbench.plots.fixres import render_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
render_figure(
    sm.params.figure,
    read_metrics(sm.input.metrics),
    sm.output.pdf,
    sm.output.png,
    datasets=sm.params.datasets or None,
    models=sm.params.models or None,
)
