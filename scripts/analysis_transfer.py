"""Rule analyse_transfer: robustness vs transfer numbers (figure 2)."""

from oodbench.analysis import run
from oodbench.jobs import setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
run.transfer(sm.input[0], sm.params.analysis, sm.output.points, sm.output.correlation, sm.output.summary)
