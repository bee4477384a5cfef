"""Rules prepare_imagenet_train / prepare_demo_train: a training manifest (contract §1)."""

from pathlib import Path

from oodbench.finetune.data import build_demo_train, prepare_imagenet_train
from oodbench.jobs import setup_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
dest = Path(sm.output.prepared).parent
if sm.params.kind == "imagenet_train":
    prepare_imagenet_train(raw_dir=sm.params.raw_dir, dest_dir=dest)
else:
    build_demo_train(dest, **sm.params.options)
