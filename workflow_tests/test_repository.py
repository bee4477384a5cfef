"""The repository ships every file the workflow reads.

A broad .gitignore pattern once hid the packaged class lists (oodbench/*/data/): every test
passed in the working tree and failed on a clean clone. This test sees what a clone would miss.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIRS = ["oodbench", "rules", "scripts", "schemas", "profiles", "demo", "envs", "ci", "docs"]
BUILD_DEBRIS = ("__pycache__", ".pyc", ".egg-info")


def ignored_files(paths):
    listing = subprocess.run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [p for p in listing if not any(part in p for part in BUILD_DEBRIS)]


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)
def test_no_workflow_file_is_hidden_by_gitignore():
    existing = [d for d in SHIPPED_DIRS if (ROOT / d).exists()]
    hidden = ignored_files(existing)
    assert not hidden, f"these files are git-ignored, so a clone lacks them; fix .gitignore: {hidden}"
