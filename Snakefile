# oodbench: robustness and transferability of ImageNet classifiers (Djolonga et al., CVPR 2021)
#
#   snakemake --cores all --resources gpu=4                             # full reproduction
#   snakemake --cores all results/figures/accuracy_vs_resolution.pdf    # one figure
#   snakemake --workflow-profile profiles/slurm                         # on a cluster


from snakemake.utils import min_version

min_version("9.12")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/datasets.smk"
include: "rules/inference.smk"
include: "rules/scoring.smk"
include: "rules/figures.smk"
include: "rules/analysis.smk"
include: "rules/synthetic.smk"
include: "rules/finetune.smk"


localrules:
    all,
    metrics_table,
    merge_results,


onsuccess:
    remove_caches()


rule all:
    default_target: True
    input:
        get_final_outputs(),
