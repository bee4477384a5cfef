# FixRes (Section 4.2, Appendix C): fine-tune a model at resolution r with the test-time
# preprocessing, then predict/score `<model>+fixres<r>` like any other model (its registry entry
# is a `checkpoint` model on this rule's output). Figures 4, 10 and 11 compare default
# preprocessing, the best test resolution and FixRes.


rule prepare_imagenet_train:
    output:
        prepared="data/imagenet_train/.prepared",
        manifest="data/imagenet_train/manifest.csv",
        classes="data/imagenet_train/classes.json",
    log:
        "logs/prepare_train_data/imagenet_train.log",
    conda:
        "../envs/inference.yaml"
    params:
        kind="imagenet_train",
        raw_dir=lookup_config("fixres/imagenet_train_path", "data/raw/imagenet_train"),
        options={},
    script:
        "../scripts/prepare_train_data.py"


rule prepare_demo_train:
    output:
        prepared="data/demo_train/.prepared",
        manifest="data/demo_train/manifest.csv",
        classes="data/demo_train/classes.json",
    log:
        "logs/prepare_train_data/demo_train.log",
    conda:
        "../envs/inference.yaml"
    params:
        kind="demo_train",
        raw_dir="",
        options=lookup_config("fixres/demo_train", {}),
    script:
        "../scripts/prepare_train_data.py"


rule finetune_fixres:
    input:
        manifest=get_fixres_train_manifest,
        checkpoint=get_checkpoint,
    output:
        checkpoint="results/checkpoints/{model}+fixres{res}.pth",
        provenance="results/checkpoints/{model}+fixres{res}.json",
    log:
        "logs/finetune_fixres/{model}+fixres{res}.log",
    benchmark:
        "benchmarks/finetune_fixres/{model}+fixres{res}.tsv"
    wildcard_constraints:
        res=r"\d+",
    conda:
        "../envs/inference.yaml"
    threads: 8
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=1440,
    params:
        entry=get_fixres_base_entry,
        settings=get_fixres_settings,
        backend=lookup_config("predict/backend", "tensor"),
    script:
        "../scripts/finetune_fixres.py"


rule plot_fig4_fixres:
    input:
        metrics="results/metrics.csv",
    output:
        pdf=report(
            "results/figures/fig4_fixres_robustness.pdf",
            caption="../report/fig4_fixres_robustness.rst",
            category="Resolution",
            labels={
                "figure": "fig 4: FixRes on ImageNet-A and ObjectNet",
                "format": "pdf",
            },
        ),
        png=report(
            "results/figures/fig4_fixres_robustness.png",
            caption="../report/fig4_fixres_robustness.rst",
            category="Resolution",
            labels={
                "figure": "fig 4: FixRes on ImageNet-A and ObjectNet",
                "format": "png",
            },
        ),
    log:
        "logs/figures/fig4_fixres_robustness.log",
    conda:
        "../envs/inference.yaml"
    params:
        figure="fig4_fixres_robustness",
        datasets=lookup_config("fixres/fig4_datasets", []),
        models=get_fixres_plot_models(),
    script:
        "../scripts/plot_fixres.py"


rule plot_fig10_fixres:
    input:
        metrics="results/metrics.csv",
    output:
        pdf=report(
            "results/figures/fig10_fixres_all.pdf",
            caption="../report/fig10_fixres_all.rst",
            category="Resolution",
            labels={"figure": "fig 10: FixRes on every dataset", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig10_fixres_all.png",
            caption="../report/fig10_fixres_all.rst",
            category="Resolution",
            labels={"figure": "fig 10: FixRes on every dataset", "format": "png"},
        ),
    log:
        "logs/figures/fig10_fixres_all.log",
    conda:
        "../envs/inference.yaml"
    params:
        figure="fig10_fixres_all",
        datasets=[],
        models=get_fixres_plot_models(),
    script:
        "../scripts/plot_fixres.py"


rule plot_fig11_fixres:
    input:
        metrics="results/metrics.csv",
    output:
        pdf=report(
            "results/figures/fig11_accuracy_vs_resolution_fixres.pdf",
            caption="../report/fig11_accuracy_vs_resolution_fixres.rst",
            category="Resolution",
            labels={
                "figure": "fig 11: accuracy vs resolution, with FixRes",
                "format": "pdf",
            },
        ),
        png=report(
            "results/figures/fig11_accuracy_vs_resolution_fixres.png",
            caption="../report/fig11_accuracy_vs_resolution_fixres.rst",
            category="Resolution",
            labels={
                "figure": "fig 11: accuracy vs resolution, with FixRes",
                "format": "png",
            },
        ),
    log:
        "logs/figures/fig11_accuracy_vs_resolution_fixres.log",
    conda:
        "../envs/inference.yaml"
    params:
        figure="fig11_accuracy_vs_resolution_fixres",
        datasets=[],
        models=get_fixres_plot_models(),
    script:
        "../scripts/plot_fixres.py"
