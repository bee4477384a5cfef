# Decode once per (dataset, geometric preprocessing): the first predict job of a key builds a
# uint8 cache (oodbench.jobs.shared_cache) that every model sharing the key reads; the caches
# are removed when the run succeeds (predict.keep_cache: true keeps them).


rule predict:
    input:
        manifest="data/{dataset}/manifest.csv",
        checkpoint=get_checkpoint,
    output:
        "results/predictions/{model}/{dataset}/{resolution}.h5",
    log:
        "logs/predict/{model}/{dataset}/{resolution}.log",
    benchmark:
        "benchmarks/predict/{model}/{dataset}/{resolution}.tsv"
    conda:
        "../envs/inference.yaml"
    threads: lookup_config("predict/threads", 4)
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=240,
    params:
        settings=get_predict_params,
        amp=lookup_config("predict/amp", "bfloat16"),
        logits_dtype=lookup_config("predict/logits_dtype", "float16"),
        cache_dir=lookup_config("predict/cache_dir", "results/cache"),
    script:
        "../scripts/predict.py"
