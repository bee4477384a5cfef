# Synthetic factor-of-variation set (Section 4.3, Appendix D; issue 5):
# sources -> objects.csv + backgrounds.csv -> shards -> data/synthetic_{factor}/ (contract 1)
# -> predict/score (inference rules) -> results/analysis/synthetic_{variant}.csv -> figures.
# The helpers get_synthetic_* live in rules/common.smk (they call oodbench.synthetic.workflow).


wildcard_constraints:
    factor="size|location|rotation",
    variant=r"(size|location|rotation)(_\d+)?",
    shard=r"\d+",


rule synthetic_openimages_select:
    output:
        selection="data/synthetic_sources/openimages/selection.csv",
    log:
        "logs/synthetic/openimages_select.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("openimages_select"),
    script:
        "../scripts/synthetic_openimages_select.py"


rule synthetic_objects:
    input:
        unpack(get_synthetic_object_inputs),
    output:
        objects="data/synthetic_sources/objects/objects.csv",
    log:
        "logs/synthetic/objects.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("objects"),
    script:
        "../scripts/synthetic_objects.py"


rule synthetic_backgrounds:
    input:
        get_synthetic_background_inputs,
    output:
        backgrounds="data/synthetic_sources/backgrounds.csv",
    log:
        "logs/synthetic/backgrounds.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("backgrounds"),
    script:
        "../scripts/synthetic_backgrounds.py"


rule synthetic_compose:
    input:
        objects="data/synthetic_sources/objects/objects.csv",
        backgrounds="data/synthetic_sources/backgrounds.csv",
    output:
        shard=temp(directory("data/synthetic_{factor}.shards/{shard}")),
    log:
        "logs/synthetic/compose_{factor}_{shard}.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("compose"),
        num_shards=get_synthetic_num_shards,
    script:
        "../scripts/synthetic_compose.py"


rule synthetic_merge:
    input:
        shards=get_synthetic_shards,
        objects="data/synthetic_sources/objects/objects.csv",
    output:
        manifest="data/synthetic_{factor}/manifest.csv",
        classes="data/synthetic_{factor}/classes.json",
        prepared="data/synthetic_{factor}/.prepared",
    log:
        "logs/synthetic/merge_{factor}.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("merge"),
    script:
        "../scripts/synthetic_merge.py"


rule synthetic_analysis:
    input:
        manifest=get_synthetic_analysis_manifest,
        logits=get_synthetic_analysis_logits,
    output:
        "results/analysis/synthetic_{variant}.csv",
    log:
        "logs/synthetic/analysis_{variant}.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("analysis"),
        logits=get_synthetic_analysis_logits_by_model,
    script:
        "../scripts/synthetic_analysis.py"


rule synthetic_fig5_location:
    input:
        "results/analysis/synthetic_location.csv",
    output:
        pdf=report(
            "results/figures/fig5_location.pdf",
            caption="../report/fig5_location.rst",
            category="Synthetic",
            labels={"figure": "fig5_location", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig5_location.png",
            caption="../report/fig5_location.rst",
            category="Synthetic",
            labels={"figure": "fig5_location", "format": "png"},
        ),
    log:
        "logs/figures/fig5_location.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("figure"),
        figure="fig5_location",
    script:
        "../scripts/synthetic_figure.py"


rule synthetic_fig6_rotation_size:
    input:
        "results/analysis/synthetic_rotation.csv",
        "results/analysis/synthetic_size.csv",
    output:
        pdf=report(
            "results/figures/fig6_rotation_size.pdf",
            caption="../report/fig6_rotation_size.rst",
            category="Synthetic",
            labels={"figure": "fig6_rotation_size", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig6_rotation_size.png",
            caption="../report/fig6_rotation_size.rst",
            category="Synthetic",
            labels={"figure": "fig6_rotation_size", "format": "png"},
        ),
    log:
        "logs/figures/fig6_rotation_size.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("figure"),
        figure="fig6_rotation_size",
    script:
        "../scripts/synthetic_figure.py"


rule synthetic_fig12_samples:
    input:
        "data/synthetic_size/.prepared",
        "data/synthetic_location/.prepared",
        "data/synthetic_rotation/.prepared",
    output:
        pdf=report(
            "results/figures/fig12_samples.pdf",
            caption="../report/fig12_samples.rst",
            category="Synthetic",
            labels={"figure": "fig12_samples", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig12_samples.png",
            caption="../report/fig12_samples.rst",
            category="Synthetic",
            labels={"figure": "fig12_samples", "format": "png"},
        ),
    log:
        "logs/figures/fig12_samples.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("figure"),
        figure="fig12_samples",
    script:
        "../scripts/synthetic_figure.py"


rule synthetic_fig13_size:
    input:
        "results/analysis/synthetic_size.csv",
    output:
        pdf=report(
            "results/figures/fig13_size.pdf",
            caption="../report/fig13_size.rst",
            category="Synthetic",
            labels={"figure": "fig13_size", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig13_size.png",
            caption="../report/fig13_size.rst",
            category="Synthetic",
            labels={"figure": "fig13_size", "format": "png"},
        ),
    log:
        "logs/figures/fig13_size.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("figure"),
        figure="fig13_size",
    script:
        "../scripts/synthetic_figure.py"


rule synthetic_fig14_rotation:
    input:
        "results/analysis/synthetic_rotation.csv",
    output:
        pdf=report(
            "results/figures/fig14_rotation.pdf",
            caption="../report/fig14_rotation.rst",
            category="Synthetic",
            labels={"figure": "fig14_rotation", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig14_rotation.png",
            caption="../report/fig14_rotation.rst",
            category="Synthetic",
            labels={"figure": "fig14_rotation", "format": "png"},
        ),
    log:
        "logs/figures/fig14_rotation.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("figure"),
        figure="fig14_rotation",
    script:
        "../scripts/synthetic_figure.py"


rule synthetic_fig15_location:
    input:
        "results/analysis/synthetic_location.csv",
    output:
        pdf=report(
            "results/figures/fig15_location.pdf",
            caption="../report/fig15_location.rst",
            category="Synthetic",
            labels={"figure": "fig15_location", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig15_location.png",
            caption="../report/fig15_location.rst",
            category="Synthetic",
            labels={"figure": "fig15_location", "format": "png"},
        ),
    log:
        "logs/figures/fig15_location.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("figure"),
        figure="fig15_location",
    script:
        "../scripts/synthetic_figure.py"


rule synthetic_fig16_location_50:
    input:
        "results/analysis/synthetic_location_50.csv",
    output:
        pdf=report(
            "results/figures/fig16_location_50.pdf",
            caption="../report/fig16_location_50.rst",
            category="Synthetic",
            labels={"figure": "fig16_location_50", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig16_location_50.png",
            caption="../report/fig16_location_50.rst",
            category="Synthetic",
            labels={"figure": "fig16_location_50", "format": "png"},
        ),
    log:
        "logs/figures/fig16_location_50.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("figure"),
        figure="fig16_location_50",
    script:
        "../scripts/synthetic_figure.py"


rule synthetic_fig17_location_75:
    input:
        "results/analysis/synthetic_location_75.csv",
    output:
        pdf=report(
            "results/figures/fig17_location_75.pdf",
            caption="../report/fig17_location_75.rst",
            category="Synthetic",
            labels={"figure": "fig17_location_75", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig17_location_75.png",
            caption="../report/fig17_location_75.rst",
            category="Synthetic",
            labels={"figure": "fig17_location_75", "format": "png"},
        ),
    log:
        "logs/figures/fig17_location_75.log",
    conda:
        "../envs/synthetic.yaml"
    params:
        synthetic=get_synthetic_settings("figure"),
        figure="fig17_location_75",
    script:
        "../scripts/synthetic_figure.py"
