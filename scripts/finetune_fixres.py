"""Rule finetune_fixres: base model + training manifest → results/checkpoints/<model>+fixres<r>.pth."""

from oodbench.finetune.job import run_fixres
from oodbench.jobs import setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
run_fixres(
    base_model=sm.wildcards.model,
    entry=sm.params.entry,
    resolution=int(sm.wildcards.res),
    settings=sm.params.settings,
    train_manifest=sm.input.manifest,
    out_path=sm.output.checkpoint,
    backend=sm.params.backend,
    threads=sm.threads,
)
