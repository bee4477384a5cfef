# Decode once per (dataset, geometric preprocessing), then run every model from that cache.


rule cache_images:
    input:
        manifest="data/{dataset}/manifest.csv",
    output:
        temp("results/cache/{dataset}/{prep}.npy"),
    log:
        "logs/cache_images/{dataset}/{prep}.log",
    benchmark:
        "benchmarks/cache_images/{dataset}/{prep}.tsv"
    conda:
        "../envs/inference.yaml"
    threads: lookup_config("predict/cache_workers", 8)
    resources:
        mem_mb=4000,
    script:
        "../scripts/cache_images.py"


rule predict:
    input:
        manifest="data/{dataset}/manifest.csv",
        cache=get_cache,
        checkpoint=get_checkpoint,
    output:
        "results/predictions/{model}/{dataset}/{resolution}.h5",
    log:
        "logs/predict/{model}/{dataset}/{resolution}.log",
    benchmark:
        "benchmarks/predict/{model}/{dataset}/{resolution}.tsv"
    conda:
        "../envs/inference.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=240,
    params:
        settings=get_predict_params,
        amp=lookup_config("predict/amp", "bfloat16"),
        logits_dtype=lookup_config("predict/logits_dtype", "float16"),
    script:
        "../scripts/predict.py"
