"""Rule plot_accuracy_vs_resolution."""

from oodbench.jobs import setup_logging
from oodbench.metrics import read_metrics
from oodbench.plots.resolution import plot_accuracy_vs_resolution

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
metrics = read_metrics(sm.input[0])
plot_accuracy_vs_resolution(metrics, sm.output.pdf, sm.output.png, sm.params.default_crops)
