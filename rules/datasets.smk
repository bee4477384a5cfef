# Prepared datasets: data/<dataset>/{manifest.csv, classes.json, .prepared} (contract 1).
# A dataset of kind `prepared` has no rule: its folder is supplied by the user.


rule build_demo_dataset:
    output:
        prepared="data/{demo_dataset}/.prepared",
        manifest="data/{demo_dataset}/manifest.csv",
        classes="data/{demo_dataset}/classes.json",
    log:
        "logs/build_demo_dataset/{demo_dataset}.log",
    conda:
        "../envs/inference.yaml"
    threads: 2
    params:
        dataset=get_dataset_kind,
        options=lookup_config("demo", {}),
    script:
        "../scripts/build_demo_dataset.py"


# ---------------------------------------------------------------- the seven robustness datasets
# Archives land in data/downloads/ (resumable, checksum-verified); each prepare rule builds
# data/<dataset>/ in a temporary folder and renames it into place (.prepared written last).
# ImageNet and ObjectNet are placed by the user (config `path`); see docs/datasets.md.


rule download_imagenet_v2:
    output:
        "data/downloads/imagenetv2-matched-frequency.tar.gz",
    log:
        "logs/datasets/download_imagenet_v2.log",
    conda:
        "../envs/inference.yaml"
    params:
        source=lookup_config("datasets/imagenet_v2", {}),
    script:
        "../scripts/download_dataset.py"


rule download_imagenet_a:
    output:
        "data/downloads/imagenet-a.tar",
    log:
        "logs/datasets/download_imagenet_a.log",
    conda:
        "../envs/inference.yaml"
    params:
        source=lookup_config("datasets/imagenet_a", {}),
    script:
        "../scripts/download_dataset.py"


rule download_imagenet_c:
    output:
        "data/downloads/imagenet_c/{part}.tar",
    log:
        "logs/datasets/download_imagenet_c_{part}.log",
    wildcard_constraints:
        part="noise|blur|weather|digital|extra",
    conda:
        "../envs/inference.yaml"
    params:
        source=lookup_config("datasets/imagenet_c/parts/{part}", {}),
    script:
        "../scripts/download_dataset.py"


rule download_vid_ytbb_robust:
    output:
        "data/downloads/imagenet_vid_ytbb_robust.tar.gz",
    log:
        "logs/datasets/download_vid_ytbb_robust.log",
    conda:
        "../envs/inference.yaml"
    params:
        source=lookup_config("datasets/imagenet_vid_robust", {}),
    script:
        "../scripts/download_dataset.py"


rule prepare_imagenet:
    output:
        manifest="data/imagenet/manifest.csv",
        classes="data/imagenet/classes.json",
        prepared="data/imagenet/.prepared",
    log:
        "logs/datasets/prepare_imagenet.log",
    conda:
        "../envs/inference.yaml"
    params:
        dataset="imagenet",
        options=lookup_config("datasets/imagenet", {}),
    script:
        "../scripts/prepare_dataset.py"


rule prepare_imagenet_v2:
    input:
        "data/downloads/imagenetv2-matched-frequency.tar.gz",
    output:
        manifest="data/imagenet_v2/manifest.csv",
        classes="data/imagenet_v2/classes.json",
        prepared="data/imagenet_v2/.prepared",
    log:
        "logs/datasets/prepare_imagenet_v2.log",
    conda:
        "../envs/inference.yaml"
    params:
        dataset="imagenet_v2",
        options=lookup_config("datasets/imagenet_v2", {}),
    script:
        "../scripts/prepare_dataset.py"


rule prepare_imagenet_a:
    input:
        "data/downloads/imagenet-a.tar",
    output:
        manifest="data/imagenet_a/manifest.csv",
        classes="data/imagenet_a/classes.json",
        prepared="data/imagenet_a/.prepared",
    log:
        "logs/datasets/prepare_imagenet_a.log",
    conda:
        "../envs/inference.yaml"
    params:
        dataset="imagenet_a",
        options=lookup_config("datasets/imagenet_a", {}),
    script:
        "../scripts/prepare_dataset.py"


rule prepare_imagenet_c:
    input:
        branch(
            lookup_config("datasets/imagenet_c/include_extra", False),
            then=expand(
                "data/downloads/imagenet_c/{part}.tar",
                part=["noise", "blur", "weather", "digital", "extra"],
            ),
            otherwise=expand(
                "data/downloads/imagenet_c/{part}.tar",
                part=["noise", "blur", "weather", "digital"],
            ),
        ),
    output:
        manifest="data/imagenet_c/manifest.csv",
        classes="data/imagenet_c/classes.json",
        prepared="data/imagenet_c/.prepared",
    log:
        "logs/datasets/prepare_imagenet_c.log",
    conda:
        "../envs/inference.yaml"
    params:
        dataset="imagenet_c",
        options=lookup_config("datasets/imagenet_c", {}),
    script:
        "../scripts/prepare_dataset.py"


rule prepare_imagenet_c_generated:
    input:
        "data/imagenet/.prepared",
    output:
        manifest="data/imagenet_c_generated/manifest.csv",
        classes="data/imagenet_c_generated/classes.json",
        prepared="data/imagenet_c_generated/.prepared",
    log:
        "logs/datasets/prepare_imagenet_c_generated.log",
    conda:
        "../envs/inference.yaml"
    threads: 8
    params:
        dataset="imagenet_c_generated",
        options=lookup_config("datasets/imagenet_c_generated", {}),
    script:
        "../scripts/prepare_dataset.py"


rule prepare_objectnet:
    output:
        manifest="data/objectnet/manifest.csv",
        classes="data/objectnet/classes.json",
        prepared="data/objectnet/.prepared",
    log:
        "logs/datasets/prepare_objectnet.log",
    conda:
        "../envs/inference.yaml"
    params:
        dataset="objectnet",
        options=lookup_config("datasets/objectnet", {}),
    script:
        "../scripts/prepare_dataset.py"


rule prepare_imagenet_vid_robust:
    input:
        "data/downloads/imagenet_vid_ytbb_robust.tar.gz",
    output:
        manifest="data/imagenet_vid_robust/manifest.csv",
        classes="data/imagenet_vid_robust/classes.json",
        prepared="data/imagenet_vid_robust/.prepared",
    log:
        "logs/datasets/prepare_imagenet_vid_robust.log",
    conda:
        "../envs/inference.yaml"
    params:
        dataset="imagenet_vid_robust",
        options=lookup_config("datasets/imagenet_vid_robust", {}),
    script:
        "../scripts/prepare_dataset.py"


rule prepare_ytbb_robust:
    input:
        "data/downloads/imagenet_vid_ytbb_robust.tar.gz",
    output:
        manifest="data/ytbb_robust/manifest.csv",
        classes="data/ytbb_robust/classes.json",
        prepared="data/ytbb_robust/.prepared",
    log:
        "logs/datasets/prepare_ytbb_robust.log",
    conda:
        "../envs/inference.yaml"
    params:
        dataset="ytbb_robust",
        options=lookup_config("datasets/ytbb_robust", {}),
    script:
        "../scripts/prepare_dataset.py"
