"""Rule predict: one model × dataset × resolution → logits .h5 (contract 2)."""

from oodbench.jobs import predict, setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
predict(
    model_name=sm.wildcards.model,
    entry=sm.params.settings["entry"],
    dataset=sm.wildcards.dataset,
    resolution=sm.wildcards.resolution,
    preprocessing=sm.params.settings["preprocessing"],
    manifest_path=sm.input.manifest,
    cache_dir=sm.params.cache_dir,
    out_path=sm.output[0],
    batch_size=sm.params.settings["batch_size"],
    threads=sm.threads,
    amp=sm.params.amp,
    logits_dtype=sm.params.logits_dtype,
)
