"""Rule synthetic_backgrounds: validate the background photos into backgrounds.csv."""

from oodbench.jobs import setup_logging
from oodbench.synthetic.pipeline import prepare_backgrounds

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
prepare_backgrounds(sm.params.synthetic, sm.output.backgrounds)
