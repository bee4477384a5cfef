"""Build data/<dataset>/ (manifest.csv, classes.json, images, .prepared) for one config entry.

Snakemake: params.dataset (name), params.options (its config block), input (downloaded archives),
output.prepared, log. Command line: prepare_dataset.py NAME CONFIG.yaml [ARCHIVE ...]
"""

import sys
from pathlib import Path

from oodbench.datasets.builders import prepare_dataset
from oodbench.jobs import setup_logging


def main(name, options, dest, archives, log_path=None, threads=1):
    setup_logging(log_path)  # log and tracebacks go to the rule's log file
    options = {"workers": threads, **options}
    prepare_dataset(name, options, dest, archives)


if "snakemake" in globals():
    smk = globals()["snakemake"]
    main(
        smk.params.dataset,
        dict(smk.params.options),
        Path(smk.output.prepared).parent,
        list(smk.input),
        smk.log[0],
        smk.threads,
    )
elif __name__ == "__main__":
    import yaml

    if len(sys.argv) < 3:
        sys.exit(__doc__)
    dataset, config_path, *inputs = sys.argv[1:]
    config = yaml.safe_load(Path(config_path).read_text())
    main(dataset, config["datasets"][dataset], Path("data") / dataset, inputs)
