"""Rule plot_accuracy_vs_resolution."""

import pandas as pd

from oodbench.jobs import setup_logging
from oodbench.plots.resolution import plot_accuracy_vs_resolution

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
metrics = pd.read_csv(sm.input[0], dtype={"resolution": str, "subset": str})
plot_accuracy_vs_resolution(metrics, sm.output.pdf, sm.output.png, sm.params.default_crops)
