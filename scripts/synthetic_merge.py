"""Rule synthetic_merge: all shards -> data/synthetic_<factor>/ (manifest, classes, .prepared)."""

from pathlib import Path

from oodbench.jobs import setup_logging
from oodbench.synthetic.pipeline import merge

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
merge(sm.params.synthetic, sm.wildcards.factor, list(sm.input.shards), sm.input.objects, str(Path(sm.output.prepared).parent))
