"""Rule cache_images: decode a dataset once at one geometric preprocessing."""

from oodbench.jobs import cache_images, setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
cache_images(
    manifest_path=snakemake.input.manifest,  # noqa: F821
    cache_key=snakemake.wildcards.prep,  # noqa: F821
    out_path=snakemake.output[0],  # noqa: F821
    workers=snakemake.threads,  # noqa: F821
)
