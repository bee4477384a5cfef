"""Rule analyse_informativeness: group classifiers from ImageNet + metrics (figures 1 right, 8)."""

from oodbench.analysis import run
from oodbench.jobs import setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
run.informativeness(
    sm.input[0], sm.params.analysis, sm.output.single, sm.output.pairs, sm.output.summary,
    threads=sm.threads,
)
