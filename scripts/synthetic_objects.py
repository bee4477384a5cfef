"""Rule synthetic_objects: RGBA cut-outs + objects.csv from the configured object source."""

from pathlib import Path

from oodbench.jobs import setup_logging
from oodbench.synthetic.pipeline import prepare_objects

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
selection = sm.input.get("selection") if hasattr(sm.input, "get") else None
prepare_objects(sm.params.synthetic, Path(sm.output.objects).parent, selection)
