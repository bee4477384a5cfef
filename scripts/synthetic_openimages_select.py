"""Rule synthetic_openimages_select: download OpenImages annotations, choose the objects."""

from pathlib import Path

from oodbench.jobs import setup_logging
from oodbench.synthetic.pipeline import select_openimages

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
# the raw OpenImages files live beside the selection table
select_openimages(sm.params.synthetic, Path(sm.output.selection).parent, sm.output.selection)
