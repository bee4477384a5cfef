"""Download one dataset archive, resuming a partial file and verifying its checksum.

Snakemake: params.source ({url, sha256 | md5}), output[0], log.
Command line: download_dataset.py URL DEST [sha256:HEX | md5:HEX]
"""

import sys

from oodbench.datasets.builders import download_dataset_file
from oodbench.jobs import setup_logging


def main(source, dest, log_path=None):
    setup_logging(log_path)  # log and tracebacks go to the rule's log file
    download_dataset_file(source, dest)


if "snakemake" in globals():
    smk = globals()["snakemake"]
    main(dict(smk.params.source), smk.output[0], smk.log[0])
elif __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    url, dest, *digest = sys.argv[1:]
    source = {"url": url}
    if digest:
        algorithm, _, value = digest[0].partition(":")
        source[algorithm] = value
    main(source, dest)
