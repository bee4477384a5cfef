"""The demo's stand-in datasets and the manifest helpers they are written with (contracts.md §1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from oodbench.datasets import DEMO_DATASETS, demo
from oodbench.datasets.common import imagenet_wnids
from oodbench.datasets.manifest import (
    ManifestError,
    label_matrix,
    manifest_digest,
    parse_labels,
    read_classes,
    read_manifest,
    staged_dataset_dir,
    write_manifest_atomically,
)

REPO = Path(__file__).resolve().parents[1]
# Hendrycks & Dietterich's 15 benchmark corruptions (ImageNet-C release, 4 archives).
IMAGENET_C_BENCHMARK = {
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
}  # fmt: skip
NUM_PHOTOS = len(demo.DEMO_SUPERCLASSES)


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def leftovers(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(f"{name}.")]


# ----------------------------------------------------------------------------- superclass table


def test_superclass_members_are_the_named_imagenet_classes():
    wnids = imagenet_wnids()
    for spec in demo.DEMO_SUPERCLASSES:
        for member in spec.members:
            assert wnids[member.index] == member.wnid, (spec.superclass, member)


def test_superclasses_are_disjoint_and_every_photo_loads():
    seen: set[int] = set()
    for spec in demo.DEMO_SUPERCLASSES:
        assert not seen & set(spec.imagenet), spec.superclass
        seen |= set(spec.imagenet)
        photo = demo.load_demo_photo(spec.superclass)
        assert photo.mode == "RGB" and min(photo.size) >= 256, (
            spec.superclass,
            photo.size,
        )


# ----------------------------------------------------------------------------- demo_clean


def test_demo_clean_layout_counts_and_labels(tmp_path):
    dest = demo.build_demo_clean(tmp_path / "demo_clean", crops_per_photo=2)
    frame = read_manifest(dest / "manifest.csv")
    assert list(frame.columns) == ["image_id", "path", "label"]
    assert len(frame) == 2 * NUM_PHOTOS
    assert frame["label"].astype(int).value_counts().to_dict() == {
        k: 2 for k in range(NUM_PHOTOS)
    }
    classes = read_classes(dest / "classes.json")
    assert [c["name"] for c in classes["classes"]] == [
        s.superclass for s in demo.DEMO_SUPERCLASSES
    ]
    assert classes["dataset"] == "demo_clean" and "seed 0" in classes["source"]
    for path in frame["path"]:
        with Image.open(dest / path) as image:
            assert image.format == "JPEG" and 300 <= min(image.size) <= 400
    prepared = json.loads((dest / ".prepared").read_text())
    assert prepared["manifest_sha256"] == manifest_digest(dest / "manifest.csv")
    assert prepared["num_images"] == len(frame)


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    first = demo.build_demo_clean(
        tmp_path / "a" / "demo_clean", crops_per_photo=2, seed=7
    )
    second = demo.build_demo_clean(
        tmp_path / "b" / "demo_clean", crops_per_photo=2, seed=7
    )
    other = demo.build_demo_clean(
        tmp_path / "c" / "demo_clean", crops_per_photo=2, seed=8
    )
    assert folder_bytes(first) == folder_bytes(second)
    a, c = folder_bytes(first), folder_bytes(other)
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".jpg"))


# ----------------------------------------------------------------------------- demo_corrupted


def test_default_corruptions_are_the_imagenet_c_benchmark():
    assert set(demo.benchmark_corruptions()) == IMAGENET_C_BENCHMARK
    assert len(demo.benchmark_corruptions()) == 15


def test_demo_corrupted_layout_and_counts(tmp_path):
    corruptions = ["gaussian_noise", "frost", "pixelate"]
    dest = demo.build_demo_corrupted(
        tmp_path / "demo_corrupted",
        corruptions=corruptions,
        severities=(1, 5),
        corrupted_per_photo=2,
    )
    frame = read_manifest(dest / "manifest.csv")
    assert list(frame.columns) == [
        "image_id",
        "path",
        "label",
        "corruption",
        "severity",
    ]
    assert len(frame) == NUM_PHOTOS * 2 * len(corruptions) * 2
    counts = frame.groupby(["corruption", "severity"]).size()
    assert set(counts) == {NUM_PHOTOS * 2} and len(counts) == len(corruptions) * 2
    for path in frame["path"].iloc[::7]:
        with Image.open(dest / path) as image:
            assert image.format == "JPEG" and image.size == (224, 224)
    # the same base at severities 1 and 5: related images, the stronger one further from the base
    gauss = frame[frame["corruption"] == "gaussian_noise"].set_index("image_id")
    mild = np.asarray(
        Image.open(dest / gauss.loc["cat_00_gaussian_noise_1", "path"]), dtype=float
    )
    strong = np.asarray(
        Image.open(dest / gauss.loc["cat_00_gaussian_noise_5", "path"]), dtype=float
    )
    base = demo.imagenet_c_base(demo.load_demo_photo("cat")).astype(float)
    assert np.abs(mild - base).mean() + 10 < np.abs(strong - base).mean()


def test_corrupted_bytes_do_not_depend_on_the_process_count(tmp_path):
    options = dict(
        corruptions=["glass_blur", "impulse_noise", "snow"], severities=(2,), seed=3
    )
    serial = demo.build_demo_corrupted(
        tmp_path / "one" / "demo_corrupted", threads=1, **options
    )
    pooled = demo.build_demo_corrupted(
        tmp_path / "two" / "demo_corrupted", threads=2, **options
    )
    assert folder_bytes(serial) == folder_bytes(pooled)


def test_corrupted_rejects_unknown_corruption_and_severity(tmp_path):
    with pytest.raises(ValueError, match="unknown corruption.*'fogg'"):
        demo.build_demo_corrupted(tmp_path / "x", corruptions=["fogg"])
    with pytest.raises(ValueError, match="severities must be in 1..5"):
        demo.build_demo_corrupted(tmp_path / "x", severities=(0,))
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- demo_frames


def test_demo_frames_sets_of_jittered_neighbours(tmp_path):
    dest = demo.build_demo_frames(
        tmp_path / "demo_frames", anchors_per_photo=1, max_offset=3
    )
    frame = read_manifest(dest / "manifest.csv")
    assert list(frame.columns) == [
        "image_id",
        "path",
        "label",
        "anchor_id",
        "frame_offset",
    ]
    assert len(frame) == NUM_PHOTOS * 7
    offsets = frame.groupby("anchor_id")["frame_offset"].apply(sorted)
    assert all(o == list(range(-3, 4)) for o in offsets)
    assert (frame.groupby("anchor_id")["label"].nunique() == 1).all()
    cat = frame[frame["anchor_id"] == "cat_a0"].set_index("frame_offset")
    pixels = {
        o: np.asarray(Image.open(dest / cat.loc[o, "path"]), dtype=float)
        for o in cat.index
    }
    assert len({p.shape for p in pixels.values()}) == 1
    change = [np.abs(pixels[o] - pixels[0]).mean() for o in (1, 3)]
    # neighbours are close to the anchor but not copies, and drift further with |offset|
    assert 0.5 < change[0] < change[1] < 40


# ----------------------------------------------------------------------------- atomicity


def test_failure_mid_build_leaves_no_dataset_folder(tmp_path, monkeypatch):
    real_save = demo.save_jpeg
    calls = []

    def failing_save(image, path, quality):
        calls.append(path)
        if len(calls) == 5:
            raise OSError("disk full (simulated)")
        real_save(image, path, quality)

    monkeypatch.setattr(demo, "save_jpeg", failing_save)
    with pytest.raises(OSError, match="simulated"):
        demo.build_demo_clean(tmp_path / "data" / "demo_clean", crops_per_photo=2)
    assert len(calls) == 5
    assert not (tmp_path / "data" / "demo_clean").exists()
    assert leftovers(tmp_path / "data", "demo_clean") == []


def test_failed_rebuild_keeps_the_previous_dataset(tmp_path, monkeypatch):
    dest = demo.build_demo_clean(tmp_path / "demo_clean", crops_per_photo=1)
    before = folder_bytes(dest)

    def broken_save(image, path, quality):
        raise OSError("simulated")

    monkeypatch.setattr(demo, "save_jpeg", broken_save)
    with pytest.raises(OSError):
        demo.build_demo_clean(dest, crops_per_photo=1, seed=1)
    assert folder_bytes(dest) == before
    assert leftovers(tmp_path, "demo_clean") == []


def test_build_replaces_the_empty_folder_snakemake_creates(tmp_path):
    dest = tmp_path / "demo_frames"
    dest.mkdir()  # Snakemake creates the parent of the `.prepared` output before the job
    demo.build_demo_frames(dest, anchors_per_photo=1, max_offset=1)
    assert (dest / ".prepared").is_file() and len(
        read_manifest(dest / "manifest.csv")
    ) == NUM_PHOTOS * 3
    assert leftovers(tmp_path, "demo_frames") == []


def test_staging_without_manifest_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="no manifest.csv"):
        with staged_dataset_dir(tmp_path / "empty"):
            pass
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- manifest helpers

CLASSES = {
    "dataset": "tiny",
    "source": "test",
    "classes": [
        {"name": "a", "imagenet": [1]},
        {"name": "b", "imagenet": [2, 3]},
        {"name": "c", "imagenet": [9]},
    ],
}


def tiny_images(root: Path, count: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.new("RGB", (8, 8), (k, 0, 0)).save(root / f"{k}.png")
    return [f"../raw/{k}.png" for k in range(count)]


def test_multi_label_round_trip(tmp_path):
    paths = tiny_images(tmp_path / "raw", 3)
    rows = pd.DataFrame(
        {"image_id": ["x", "y", "z"], "path": paths, "label": ["0", "1;2", 2]}
    )
    dest = write_manifest_atomically(rows, CLASSES, tmp_path / "tiny")
    frame = read_manifest(dest / "manifest.csv")
    assert frame["label"].tolist() == ["0", "1;2", "2"]
    assert parse_labels(frame["label"]) == [[0], [1, 2], [2]]
    assert label_matrix(frame["label"], 3).tolist() == [
        [True, False, False],
        [False, True, True],
        [False, False, True],
    ]
    assert read_classes(dest / "classes.json") == CLASSES


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda f: f.drop(columns=["label"]),
            r"manifest.csv: missing required column\(s\) \['label'\]",
        ),
        (
            lambda f: f.assign(path=["../raw/0.png", "../raw/missing.png"]),
            r"manifest.csv: column 'path'.*missing.png",
        ),
        (
            lambda f: f.assign(label=["0", "1;x"]),
            r"manifest.csv: column 'label'.*'1;x'",
        ),
        (
            lambda f: f.assign(label=["0", "3"]),
            r"manifest.csv: column 'label' has indices >= 3",
        ),
        (
            lambda f: f.assign(image_id=["x", "x"]),
            r"manifest.csv: column 'image_id' has duplicates",
        ),
    ],
)
def test_bad_manifest_names_file_and_column(tmp_path, change, message):
    paths = tiny_images(tmp_path / "raw", 2)
    rows = change(
        pd.DataFrame({"image_id": ["x", "y"], "path": paths, "label": ["0", "1"]})
    )
    with pytest.raises(ManifestError, match=message):
        write_manifest_atomically(rows, CLASSES, tmp_path / "tiny")
    assert not (tmp_path / "tiny").exists() and leftovers(tmp_path, "tiny") == []


def test_read_manifest_checks_files_on_disk(tmp_path):
    paths = tiny_images(tmp_path / "raw", 2)
    rows = pd.DataFrame({"image_id": ["x", "y"], "path": paths, "label": [0, 2]})
    dest = write_manifest_atomically(rows, CLASSES, tmp_path / "tiny")
    (tmp_path / "raw" / "1.png").unlink()
    with pytest.raises(ManifestError, match=r"tiny/manifest.csv: column 'path'.*1.png"):
        read_manifest(dest / "manifest.csv")
    assert len(read_manifest(dest / "manifest.csv", check_files=False)) == 2


def test_bad_classes_json_is_named(tmp_path):
    bad = dict(CLASSES, classes=[{"name": "a", "imagenet": [1000]}])
    (tmp_path / "classes.json").write_text(json.dumps(bad))
    with pytest.raises(
        ManifestError, match=r"classes.json: classes\[0\].imagenet: indices \[1000\]"
    ):
        read_classes(tmp_path / "classes.json")


# ----------------------------------------------------------------------------- entry points


def test_every_demo_dataset_has_a_builder():
    assert set(demo._BUILDERS) == set(DEMO_DATASETS)


def test_shared_options_go_to_the_builder_that_takes_them(tmp_path):
    # the config's one `demo:` mapping is passed to every demo dataset
    shared = {
        "seed": 2,
        "crops_per_photo": 1,
        "corrupted_per_photo": 1,
        "max_offset": 1,
    }
    dest = demo.build_demo_dataset("demo_clean", tmp_path / "my_clean", shared)
    assert len(read_manifest(dest / "manifest.csv")) == NUM_PHOTOS
    assert read_classes(dest / "classes.json")["dataset"] == "my_clean"
    with pytest.raises(ValueError, match=r"demo options: unknown key\(s\) \['crops'\]"):
        demo.build_demo_dataset("demo_frames", tmp_path / "x", {"crops": 3})
    with pytest.raises(ValueError, match="unknown demo dataset kind 'demo_x'"):
        demo.build_demo_dataset("demo_x", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_script_from_argv(tmp_path):
    dest = tmp_path / "data" / "demo_clean"
    command = [
        sys.executable,
        str(REPO / "scripts" / "build_demo_dataset.py"),
        "demo_clean",
        str(dest / ".prepared"),
    ]
    done = subprocess.run(
        command
        + ["--option", "crops_per_photo=1", "--option", "short_side_range=[224, 240]"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    frame = read_manifest(dest / "manifest.csv")
    assert len(frame) == NUM_PHOTOS
    with Image.open(dest / frame["path"].iloc[0]) as image:
        assert 224 <= min(image.size) <= 240
    failed = subprocess.run(
        command + ["--option", "nope=1"], capture_output=True, text=True
    )
    assert failed.returncode != 0 and "unknown key(s) ['nope']" in failed.stderr


SNAKEFILE = """
rule build_demo_dataset:
    output:
        prepared="data/{{dataset}}/.prepared",
    log:
        "logs/build_demo_dataset/{{dataset}}.log",
    threads: 2
    params:
        dataset="demo_frames",
        options={{"anchors_per_photo": 1, "max_offset": 1, "crops_per_photo": 1}},
    script:
        "{script}"
"""


@pytest.mark.workflow
def test_script_under_snakemake(tmp_path):
    """The script as a rule's `script:` (Snakemake prepends its own preamble to the file)."""
    script = REPO / "scripts" / "build_demo_dataset.py"
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(script=script))
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-c2", "data/my_frames/.prepared"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    log = tmp_path / "logs" / "build_demo_dataset" / "my_frames.log"
    assert done.returncode == 0, done.stderr[-3000:] + (
        log.read_text() if log.exists() else ""
    )
    frame = read_manifest(tmp_path / "data" / "my_frames" / "manifest.csv")
    assert len(frame) == NUM_PHOTOS * 3 and set(frame["frame_offset"]) == {-1, 0, 1}
    assert "demo_frames: 18 images" in log.read_text()
