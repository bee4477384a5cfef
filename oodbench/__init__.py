"""oodbench: robustness and transferability of ImageNet classifiers, as one Snakemake DAG.

Importing the package is cheap on purpose: scripts import it before the GPU lease is taken,
so nothing here may import torch.
"""

__version__ = "0.1.0"
