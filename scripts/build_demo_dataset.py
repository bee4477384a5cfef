"""Build one of the demo's stand-in datasets (kinds demo_clean, demo_corrupted, demo_frames).

From Snakemake (``script:``): output ``prepared`` (or output[0]) is ``data/<dataset>/.prepared``;
params ``dataset`` (or ``kind``; else the {dataset} wildcard) is the demo kind, params
``options`` the config's ``demo:`` mapping; threads from the rule; the log goes to log[0].

From the shell (the dataset is named after the folder)::

    python scripts/build_demo_dataset.py demo_clean data/demo_clean [--threads 2] [--option seed=1 ...]
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from oodbench.datasets.demo import build_demo_dataset
from oodbench.jobs import setup_logging
from oodbench.datasets.manifest import PREPARED_NAME

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def dataset_dir_from_output(output: str) -> Path:
    path = Path(output)
    return path.parent if path.name == PREPARED_NAME else path


def parse_option(text: str) -> tuple[str, object]:
    """``key=value``, the value read as JSON when it parses (numbers, lists), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option expects key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def run_from_snakemake(smk) -> None:
    setup_logging(smk.log[0] if smk.log else None)
    params = dict(smk.params.items())
    kind = params.get("dataset") or params.get("kind") or smk.wildcards.get("dataset")
    if not kind:
        raise ValueError(
            "build_demo_dataset: set params.dataset to the demo kind (or use a {dataset} wildcard)"
        )
    prepared = getattr(smk.output, "prepared", smk.output[0])
    build_demo_dataset(
        kind,
        dataset_dir_from_output(prepared),
        params.get("options"),
        threads=smk.threads,
    )


def run_from_argv(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", help="demo_clean, demo_corrupted or demo_frames")
    parser.add_argument(
        "dest", help="the dataset folder to create, e.g. data/demo_clean"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="worker processes (demo_corrupted)"
    )
    parser.add_argument(
        "--option",
        type=parse_option,
        action="append",
        default=[],
        help="a demo option key=value (e.g. crops_per_photo=4); repeatable",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    build_demo_dataset(
        args.kind,
        dataset_dir_from_output(args.dest),
        dict(args.option),
        threads=args.threads,
    )


# Only as the main program: a spawned worker re-imports this file as __mp_main__ and must not
# rebuild the dataset. Snakemake's script: directive runs the file as __main__ with `snakemake` set.
if __name__ == "__main__":
    if "snakemake" in globals():
        run_from_snakemake(snakemake)  # noqa: F821
    else:
        run_from_argv(sys.argv[1:])
