"""Rule score: logits + manifest → tidy scores (contract 3)."""

from oodbench.jobs import score, setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
score(
    logits_path=sm.input.logits,
    manifest_path=sm.input.manifest,
    classes_path=sm.input.classes,
    out_path=sm.output[0],
    model=sm.wildcards.model,
    dataset=sm.wildcards.dataset,
    resolution=sm.wildcards.resolution,
    pm_ks=sm.params.pm_k,
)
