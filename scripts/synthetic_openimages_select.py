"""Rule synthetic_openimages_select: download OpenImages annotations, choose the objects."""

from oodbench.jobs import setup_logging
from oodbench.synthetic.pipeline import select_openimages

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
select_openimages(sm.params.synthetic, sm.params.raw_dir, sm.output.selection)
