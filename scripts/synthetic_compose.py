"""Rule synthetic_compose: render one shard of a factor's images (atomic shard folder)."""

from oodbench.jobs import setup_logging
from oodbench.synthetic.compose import compose_shard

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm.log[0])
compose_shard(
    factor=sm.wildcards.factor,
    shard=int(sm.wildcards.shard),
    num_shards=int(sm.params.num_shards),
    objects_csv=sm.input.objects,
    backgrounds_csv=sm.input.backgrounds,
    synthetic=sm.params.synthetic,
    shard_dir=sm.output.shard,
)
