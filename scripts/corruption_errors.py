"""Rule corruption_errors: ImageNet-C mCE / relative mCE from the per-(corruption, severity) scores."""

from oodbench.jobs import corruption_errors, setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
corruption_errors(
    corrupted_path=sm.input.corrupted,
    clean_path=sm.input.clean[0] if sm.input.clean else None,
    out_path=sm.output[0],
    alexnet=sm.params.alexnet,
)
