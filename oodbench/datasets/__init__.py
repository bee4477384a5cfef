"""Dataset preparation: the manifest contract (``manifest``) and the dataset builders.

Import-light on purpose (no torch, no image libraries at import): import the submodules you need,
e.g. ``from oodbench.datasets.manifest import read_manifest``.
"""

DEMO_DATASETS = ("demo_clean", "demo_corrupted", "demo_frames")
