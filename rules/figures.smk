# One rule per figure; each output is registered for `snakemake --report`.


rule plot_accuracy_vs_resolution:
    input:
        "results/metrics.csv",
    output:
        pdf=report(
            "results/figures/accuracy_vs_resolution.pdf",
            caption="../report/accuracy_vs_resolution.rst",
            category="Resolution",
            labels={"figure": "accuracy vs resolution", "format": "pdf"},
        ),
        png=report(
            "results/figures/accuracy_vs_resolution.png",
            caption="../report/accuracy_vs_resolution.rst",
            category="Resolution",
            labels={"figure": "accuracy vs resolution", "format": "png"},
        ),
    log:
        "logs/figures/accuracy_vs_resolution.log",
    conda:
        "../envs/analysis.yaml"
    params:
        default_crops=get_default_crops(),
    script:
        "../scripts/plot_accuracy_vs_resolution.py"
