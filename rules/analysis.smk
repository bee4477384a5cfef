# Section 3 of the paper: metric correlation, regression on ImageNet accuracy, residual PCA,
# informativeness and robustness vs transfer. Inputs: the pipeline's metrics table plus the
# external results tables of the config; parameters: config["analysis"].


rule merge_results:
    input:
        metrics="results/metrics.csv",
        external=get_external_tables,
    output:
        "results/analysis/metrics_merged.csv",
    log:
        "logs/analysis/merge_results.log",
    conda:
        "../envs/analysis.yaml"
    params:
        external=lookup_config("external_results", []),
    script:
        "../scripts/analysis_merge.py"


rule analyse_correlation:
    input:
        "results/analysis/metrics_merged.csv",
    output:
        matrix="results/analysis/spearman.csv",
        summary="results/analysis/spearman.json",
    log:
        "logs/analysis/correlation.log",
    conda:
        "../envs/analysis.yaml"
    params:
        analysis=lookup_config("analysis", {}),
    script:
        "../scripts/analysis_correlation.py"


rule analyse_regression:
    input:
        "results/analysis/metrics_merged.csv",
    output:
        table="results/analysis/regression.csv",
        residuals="results/analysis/regression_residuals.csv",
        summary="results/analysis/regression.json",
    log:
        "logs/analysis/regression.log",
    conda:
        "../envs/analysis.yaml"
    params:
        analysis=lookup_config("analysis", {}),
    script:
        "../scripts/analysis_regression.py"


rule analyse_residual_pca:
    input:
        "results/analysis/metrics_merged.csv",
    output:
        table="results/analysis/residual_pca.csv",
        summary="results/analysis/residual_pca.json",
    log:
        "logs/analysis/residual_pca.log",
    conda:
        "../envs/analysis.yaml"
    params:
        analysis=lookup_config("analysis", {}),
    script:
        "../scripts/analysis_pca.py"


rule analyse_informativeness:
    input:
        "results/analysis/metrics_merged.csv",
    output:
        single="results/analysis/informativeness_single.csv",
        pairs="results/analysis/informativeness_pairs.csv",
        summary="results/analysis/informativeness.json",
    log:
        "logs/analysis/informativeness.log",
    conda:
        "../envs/analysis.yaml"
    threads: 2
    params:
        analysis=lookup_config("analysis", {}),
    script:
        "../scripts/analysis_informativeness.py"


rule analyse_transfer:
    input:
        "results/analysis/metrics_merged.csv",
    output:
        points="results/analysis/transfer_points.csv",
        correlation="results/analysis/transfer_correlation.csv",
        summary="results/analysis/transfer.json",
    log:
        "logs/analysis/transfer.log",
    conda:
        "../envs/analysis.yaml"
    params:
        analysis=lookup_config("analysis", {}),
    script:
        "../scripts/analysis_transfer.py"


# Figures of Section 3 (may move to rules/figures.smk).


rule plot_fig1_metric_correlation:
    input:
        correlation="results/analysis/spearman.csv",
        correlation_summary="results/analysis/spearman.json",
        single="results/analysis/informativeness_single.csv",
        informativeness="results/analysis/informativeness.json",
    output:
        pdf=report(
            "results/figures/fig1_metric_correlation.pdf",
            caption="../report/fig1_metric_correlation.rst",
            category="Analysis",
            labels={"figure": "fig1 metric correlation", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig1_metric_correlation.png",
            caption="../report/fig1_metric_correlation.rst",
            category="Analysis",
            labels={"figure": "fig1 metric correlation", "format": "png"},
        ),
    log:
        "logs/figures/fig1_metric_correlation.log",
    conda:
        "../envs/analysis.yaml"
    params:
        labels=lookup_config("analysis/labels", {}),
        top_k=lookup_config("analysis/informativeness/top_k", 10),
    script:
        "../scripts/plot_fig1.py"


rule plot_fig2_transfer_robustness:
    input:
        points="results/analysis/transfer_points.csv",
        correlation="results/analysis/transfer_correlation.csv",
        summary="results/analysis/transfer.json",
    output:
        pdf=report(
            "results/figures/fig2_transfer_robustness.pdf",
            caption="../report/fig2_transfer_robustness.rst",
            category="Analysis",
            labels={"figure": "fig2 transfer and robustness", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig2_transfer_robustness.png",
            caption="../report/fig2_transfer_robustness.rst",
            category="Analysis",
            labels={"figure": "fig2 transfer and robustness", "format": "png"},
        ),
    log:
        "logs/figures/fig2_transfer_robustness.log",
    conda:
        "../envs/analysis.yaml"
    params:
        labels=lookup_config("analysis/labels", {}),
    script:
        "../scripts/plot_fig2.py"


rule plot_fig7a_residual_pca:
    input:
        table="results/analysis/residual_pca.csv",
        summary="results/analysis/residual_pca.json",
    output:
        pdf=report(
            "results/figures/fig7a_residual_pca.pdf",
            caption="../report/fig7a_residual_pca.rst",
            category="Analysis",
            labels={"figure": "fig7a residual PCA", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig7a_residual_pca.png",
            caption="../report/fig7a_residual_pca.rst",
            category="Analysis",
            labels={"figure": "fig7a residual PCA", "format": "png"},
        ),
    log:
        "logs/figures/fig7a_residual_pca.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/plot_fig7a.py"


rule plot_fig8_informativeness:
    input:
        single="results/analysis/informativeness_single.csv",
        pairs="results/analysis/informativeness_pairs.csv",
        summary="results/analysis/informativeness.json",
    output:
        pdf=report(
            "results/figures/fig8_informativeness.pdf",
            caption="../report/fig8_informativeness.rst",
            category="Analysis",
            labels={"figure": "fig8 informativeness", "format": "pdf"},
        ),
        png=report(
            "results/figures/fig8_informativeness.png",
            caption="../report/fig8_informativeness.rst",
            category="Analysis",
            labels={"figure": "fig8 informativeness", "format": "png"},
        ),
    log:
        "logs/figures/fig8_informativeness.log",
    conda:
        "../envs/analysis.yaml"
    params:
        labels=lookup_config("analysis/labels", {}),
    script:
        "../scripts/plot_fig8.py"
