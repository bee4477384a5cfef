"""Rules synthetic_figure_*: draw one synthetic figure (pdf + png)."""

from oodbench.jobs import setup_logging
from oodbench.synthetic.pipeline import render_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
render_figure(sm.params.synthetic, sm.params.figure, list(sm.input), sm.output.pdf, sm.output.png)
