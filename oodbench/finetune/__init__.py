"""FixRes fine-tuning (paper Section 4.2, Appendix C): schedule, training data, trainer.

Nothing here imports torch at package import time: entry points import the package before the
GPU lease is taken (see `oodbench.gpu_lease`).
"""
