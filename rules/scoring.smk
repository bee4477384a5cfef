# Logits → tidy scores (contract 3) → one metrics table (contract 4).


rule score:
    input:
        logits="results/predictions/{model}/{dataset}/{resolution}.h5",
        manifest="data/{dataset}/manifest.csv",
        classes="data/{dataset}/classes.json",
    output:
        "results/scores/{model}/{dataset}/{resolution}.csv",
    log:
        "logs/score/{model}/{dataset}/{resolution}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        pm_k=lookup_config("scoring/pm_k", [0, 10]),
    script:
        "../scripts/score.py"


rule metrics_table:
    input:
        scores=get_all_scores,
        logits=get_all_logits,
    output:
        "results/metrics.csv",
    log:
        "logs/metrics_table.log",
    conda:
        "../envs/analysis.yaml"
    params:
        models=MODELS,
    script:
        "../scripts/metrics_table.py"


rule corruption_errors:
    input:
        corrupted="results/scores/{model}/{corruption_dataset}/{resolution}.csv",
        clean=get_clean_scores,
    output:
        "results/scores/{model}/{corruption_dataset}/{resolution}.mce.csv",
    log:
        "logs/corruption_errors/{model}/{corruption_dataset}/{resolution}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        alexnet=get_alexnet_errors,
    script:
        "../scripts/corruption_errors.py"
