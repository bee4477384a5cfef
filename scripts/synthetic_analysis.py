"""Rule synthetic_analysis: accuracy per factor value, normalised scores, differences."""

from oodbench.jobs import setup_logging
from oodbench.synthetic.pipeline import analyse

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
analyse(sm.params.synthetic, sm.wildcards.variant, sm.input.manifest, dict(sm.params.logits), sm.output[0])
