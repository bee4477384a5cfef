"""The seven robustness datasets: download/verify/extract, manifests and class maps, exact metrics.

Fixture archives in each dataset's real layout are built by ``dataset_fixtures`` and served from
127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dataset_fixtures as fx
from oodbench.datasets import download as dl
from oodbench.datasets.builders import download_dataset_file, prepare_dataset
from oodbench.datasets.common import DatasetLayoutError, imagenet_wnids, wnid_to_index
from oodbench.datasets.imagenet_c import ALEXNET_CLEAN_ERROR, BENCHMARK, corruption_error_rows
from oodbench.datasets.manifest import read_classes, read_manifest
from oodbench.metrics import score_table


def load(dataset_dir: Path) -> tuple[pd.DataFrame, dict]:
    assert (dataset_dir / ".prepared").is_file()
    return read_manifest(dataset_dir / "manifest.csv"), read_classes(dataset_dir / "classes.json")


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def scores(logits: np.ndarray, dataset_dir: Path) -> dict[tuple[str, str], float]:
    manifest, classes = load(dataset_dir)
    table = score_table(logits, manifest, classes)
    return {(m, s): v for m, s, v in zip(table["metric"], table["subset"], table["value"])}


def one_hot_logits(imagenet_indices: list[int]) -> np.ndarray:
    logits = np.zeros((len(imagenet_indices), 1000), dtype=np.float32)
    logits[np.arange(len(imagenet_indices)), imagenet_indices] = 5.0
    return logits


# ----------------------------------------------------------------------------- download


@pytest.fixture
def served():
    payload = fx.tar_bytes({f"file{i}.bin": bytes(range(256)) * 40 for i in range(3)})
    with fx.FixtureServer({"archive.tar": payload}) as server:
        yield server, payload


def test_good_download_passes_checksum(served, tmp_path):
    server, payload = served
    dest = dl.download(server.url("archive.tar"), tmp_path / "a.tar", sha256=fx.sha256(payload))
    assert dest.read_bytes() == payload
    assert not (tmp_path / "a.tar.part").exists()


def test_md5_is_verified_when_no_sha256(served, tmp_path):
    server, payload = served
    md5 = hashlib.md5(payload).hexdigest()
    download_dataset_file({"url": server.url("archive.tar"), "md5": md5}, tmp_path / "a.tar")
    with pytest.raises(dl.ChecksumError, match="md5 mismatch"):
        download_dataset_file({"url": server.url("archive.tar"), "md5": "0" * 32}, tmp_path / "b.tar")


def test_corrupted_download_fails_with_both_digests_and_leaves_nothing(served, tmp_path):
    server, payload = served
    server.files["archive.tar"] = payload[:-1] + b"X"
    want = fx.sha256(payload)
    with pytest.raises(dl.ChecksumError) as error:
        dl.download(server.url("archive.tar"), tmp_path / "a.tar", sha256=want)
    assert want in str(error.value) and fx.sha256(server.files["archive.tar"]) in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_on_rerun(served, tmp_path):
    server, payload = served
    server.cut["archive.tar"] = 5000
    with pytest.raises(dl.DownloadError, match="rerun to resume"):
        dl.download(server.url("archive.tar"), tmp_path / "a.tar", sha256=fx.sha256(payload), retries=0)
    assert not (tmp_path / "a.tar").exists()
    assert (tmp_path / "a.tar.part").stat().st_size == 5000
    dl.download(server.url("archive.tar"), tmp_path / "a.tar", sha256=fx.sha256(payload), retries=0)
    assert (tmp_path / "a.tar").read_bytes() == payload
    assert server.ranges[-1] == "bytes=5000-"


def test_retry_within_one_call_resumes(served, tmp_path, monkeypatch):
    server, payload = served
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)
    server.cut["archive.tar"] = 100
    dl.download(server.url("archive.tar"), tmp_path / "a.tar", sha256=fx.sha256(payload), retries=2)
    assert (tmp_path / "a.tar").read_bytes() == payload


def test_extraction_is_atomic_and_blocks_path_traversal(tmp_path):
    evil = write(tmp_path / "evil.tar", fx.tar_bytes({"ok/a.txt": b"a", "../escape.txt": b"x"}))
    with pytest.raises(Exception):
        dl.extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["evil.tar"]


# ----------------------------------------------------------------------------- ImageNet


def test_imagenet_wnid_order():
    wnids = imagenet_wnids()
    assert wnids[0] == "n01440764" and wnids[999] == "n15075141" and wnid_to_index()["n01751748"] == 65


@pytest.mark.parametrize("labels_kind", ["devkit", "loc_csv"])
def test_imagenet_from_tar_with_labels(tmp_path, labels_kind):
    tar = write(tmp_path / "user/ILSVRC2012_img_val.tar", fx.imagenet_val_tar())
    if labels_kind == "devkit":
        labels = write(tmp_path / "user/ILSVRC2012_devkit_t12.tar.gz", fx.devkit_tar_gz(fx.IMAGENET_TRUTH))
    else:
        labels = write(tmp_path / "user/LOC_val_solution.csv", fx.loc_val_solution_csv())
    options = {"kind": "imagenet", "path": str(tar), "labels": str(labels), "sha256": fx.sha256(tar.read_bytes())}
    manifest, classes = load(prepare_dataset("imagenet", options, tmp_path / "data/imagenet"))
    assert manifest["image_id"].tolist()[0] == "ILSVRC2012_val_00000001"
    assert manifest["label"].astype(int).tolist() == [65, 0, 999, 65, 151]
    assert len(classes["classes"]) == 1000 and classes["classes"][65] == {"name": "n01751748", "imagenet": [65]}


def test_imagenet_class_folders_via_symlink(tmp_path):
    user = tmp_path / "val"
    for i, wnid in enumerate(fx.IMAGENET_TRUTH, start=1):
        write(user / wnid / f"ILSVRC2012_val_{i:08d}.JPEG", fx.image_bytes(i))
    manifest, _ = load(prepare_dataset("imagenet", {"path": str(user)}, tmp_path / "data/imagenet"))
    assert (tmp_path / "data/imagenet/images").is_symlink()
    assert manifest["label"].astype(int).tolist() == [65, 0, 999, 65, 151]


def test_imagenet_missing_files_name_the_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match="(?s)ILSVRC2012_img_val.tar.*devkit"):
        prepare_dataset("imagenet", {"path": str(tmp_path / "nope.tar")}, tmp_path / "data/imagenet")
    tar = write(tmp_path / "ILSVRC2012_img_val.tar", fx.imagenet_val_tar())
    with pytest.raises(DatasetLayoutError, match="(?s)datasets.imagenet.labels is not set.*devkit"):
        prepare_dataset("imagenet", {"path": str(tar), "verify_checksum": False}, tmp_path / "data/imagenet")
    assert not (tmp_path / "data/imagenet").exists()


def test_imagenet_user_tar_checksum_mismatch_keeps_the_users_file(tmp_path):
    tar = write(tmp_path / "ILSVRC2012_img_val.tar", fx.imagenet_val_tar())
    with pytest.raises(dl.ChecksumError, match="expected c7e06a6c.*got"):
        prepare_dataset("imagenet", {"path": str(tar), "labels": "x"}, tmp_path / "data/imagenet")
    assert tar.exists()


# ----------------------------------------------------------------------------- ImageNet-V2


def test_imagenet_v2_labels_are_folder_numbers_not_sort_positions(tmp_path):
    payload = fx.imagenet_v2_tar_gz()
    with fx.FixtureServer({"v2.tar.gz": payload}) as server:
        archive = download_dataset_file({"url": server.url("v2.tar.gz"), "sha256": fx.sha256(payload)}, tmp_path / "dl/v2.tar.gz")
    manifest, classes = load(prepare_dataset("imagenet_v2", {}, tmp_path / "data/imagenet_v2", [archive]))
    folder = manifest["path"].str.split("/").str[-2].astype(int)
    assert (manifest["label"].astype(int) == folder).all()
    assert sorted(set(folder)) == fx.V2_CLASSES
    # the trap: lexicographic folder order would give folder "2" label 4 and "10" label 2
    lexicographic = {name: k for k, name in enumerate(sorted(str(c) for c in fx.V2_CLASSES))}
    assert lexicographic["2"] == 4 and set(manifest.loc[folder == 2, "label"].astype(int)) == {2}
    assert len(classes["classes"]) == 1000


def test_truncated_jpeg_fails_prepare_naming_the_file(tmp_path):
    good = fx.image_bytes(1)
    top = "imagenetv2-matched-frequency-format-val"
    files = {f"{top}/3/a.jpeg": good, f"{top}/3/b.jpeg": good[: len(good) // 2]}
    archive = write(tmp_path / "v2.tar.gz", fx.tar_bytes(files, gz=True))
    with pytest.raises(DatasetLayoutError, match=r"truncated.*3/b\.jpeg"):
        prepare_dataset("imagenet_v2", {}, tmp_path / "data/imagenet_v2", [archive])
    assert list((tmp_path / "data").iterdir()) == []  # no half-built dataset folder is left
    # a full decode catches it too; 'none' defers the failure to the predict stage
    with pytest.raises(DatasetLayoutError, match=r"3/b\.jpeg"):
        prepare_dataset("imagenet_v2", {"verify_images": "decode"}, tmp_path / "data/imagenet_v2", [archive])
    prepare_dataset("imagenet_v2", {"verify_images": "none"}, tmp_path / "data/imagenet_v2", [archive])


# ----------------------------------------------------------------------------- ImageNet-A


def test_imagenet_a_200_class_subset_and_accuracy(tmp_path):
    archive = write(tmp_path / "imagenet-a.tar", fx.imagenet_a_tar())
    dest = prepare_dataset("imagenet_a", {}, tmp_path / "data/imagenet_a", [archive])
    manifest, classes = load(dest)
    assert [c["imagenet"] for c in classes["classes"]] == [[6], [11], [13], [15]]
    assert manifest["label"].astype(int).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    # Each image's true class logit is 1; a non-member class (index 7) gets 3 on the first two images:
    # the subset argmax ignores it (100%), the 1000-way argmax does not (6/8).
    logits = np.zeros((8, 1000), dtype=np.float32)
    logits[np.arange(8), [6, 6, 11, 11, 13, 13, 15, 15]] = 1.0
    logits[:2, 7] = 3.0
    assert scores(logits, dest)[("top1", "all")] == 1.0
    dest = prepare_dataset("imagenet_a", {"label_space": "imagenet1k"}, tmp_path / "data/imagenet_a_1k", [archive])
    assert len(load(dest)[1]["classes"]) == 1000
    assert scores(logits, dest)[("top1", "all")] == 6 / 8


# ----------------------------------------------------------------------------- ImageNet-C


def test_imagenet_c_release_manifest(tmp_path):
    noise = write(tmp_path / "dl/noise.tar", fx.imagenet_c_part_tar(["gaussian_noise"]))
    weather = write(tmp_path / "dl/weather.tar", fx.imagenet_c_part_tar(["fog"]))
    options = {"corruptions": ["gaussian_noise", "fog"], "severities": [1, 2]}
    dest = prepare_dataset("imagenet_c", options, tmp_path / "data/imagenet_c", [noise, weather])
    manifest, _ = load(dest)
    assert len(manifest) == 2 * 2 * 2
    assert manifest[["corruption", "severity"]].drop_duplicates().values.tolist() == [
        ["gaussian_noise", 1], ["gaussian_noise", 2], ["fog", 1], ["fog", 2]]
    assert manifest["label"].astype(int).tolist() == [0, 1] * 4
    assert manifest["path"].iloc[0] == "images/noise/gaussian_noise/1/n01440764/ILSVRC2012_val_00000001.JPEG"
    table = scores(one_hot_logits([0, 0] * 4), dest)
    assert table[("top1", "corruption=fog,severity=2")] == 0.5


def test_imagenet_c_missing_corruption_is_named(tmp_path):
    noise = write(tmp_path / "dl/noise.tar", fx.imagenet_c_part_tar(["gaussian_noise"]))
    with pytest.raises(DatasetLayoutError, match="shot_noise"):
        prepare_dataset("imagenet_c", {"corruptions": ["gaussian_noise", "shot_noise"]}, tmp_path / "data/c", [noise])


def _corruption_scores(error_of) -> pd.DataFrame:
    rows = [
        {"metric": "top1", "subset": f"corruption={c},severity={s}", "value": 1 - error_of(c, s), "n": 10}
        for c in BENCHMARK for s in range(1, 6)
    ]
    rows.append({"metric": "ece", "subset": "corruption=fog,severity=1", "value": 0.3, "n": 10})
    return pd.DataFrame(rows)


def test_mce_hand_computed():
    # Every corruption at AlexNet's error except gaussian_noise, whose 5 severities err 0.1..0.5.
    from oodbench.datasets.imagenet_c import ALEXNET_ERRORS

    alexnet = ALEXNET_ERRORS["precise"]
    table = _corruption_scores(lambda c, s: s / 10 if c == "gaussian_noise" else alexnet[c])
    rows = corruption_error_rows(table, clean_top1=0.75)
    value = {(m, s): v for m, s, v in zip(rows["metric"], rows["subset"], rows["value"])}
    assert value[("ce", "corruption=gaussian_noise")] == pytest.approx(0.3 / 0.886428)
    assert value[("ce", "corruption=fog")] == pytest.approx(1.0)
    assert value[("mce", "all")] == pytest.approx((14 + 0.3 / 0.886428) / 15)
    assert value[("relative_ce", "corruption=gaussian_noise")] == pytest.approx((0.3 - 0.25) / (0.886428 - 0.4348))
    assert value[("relative_ce", "corruption=fog")] == pytest.approx((0.819324 - 0.25) / (0.819324 - ALEXNET_CLEAN_ERROR))
    assert rows.loc[rows["metric"] == "mce", "n"].item() == 750
    rounded = corruption_error_rows(table, alexnet="rounded")
    assert rounded.loc[rounded["subset"] == "corruption=gaussian_noise", "value"].item() == pytest.approx(0.3 / 0.886)
    assert "relative_mce" not in set(rounded["metric"])


def test_mce_requires_all_severities():
    table = _corruption_scores(lambda c, s: 0.5)
    table = table[table["subset"] != "corruption=frost,severity=4"]
    with pytest.raises(ValueError, match="frost/4"):
        corruption_error_rows(table)


def test_imagenet_c_generated_is_seeded_and_labelled(tmp_path):
    user = tmp_path / "val"
    for i, wnid in enumerate(fx.IMAGENET_TRUTH[:2], start=1):
        write(user / wnid / f"ILSVRC2012_val_{i:08d}.JPEG", fx.image_bytes(i, size=64))
    prepare_dataset("imagenet", {"path": str(user)}, tmp_path / "data/imagenet")
    options = {"imagenet_dir": str(tmp_path / "data/imagenet"), "corruptions": ["gaussian_noise", "brightness"],
               "severities": [3], "seed": 7, "workers": 1}
    first = prepare_dataset("imagenet_c_generated", {"kind": "imagenet_c_generated", **options}, tmp_path / "data/g1")
    second = prepare_dataset("imagenet_c_generated", {"kind": "imagenet_c_generated", **options}, tmp_path / "data/g2")
    manifest, classes = load(first)
    assert "NOT identical" in classes["source"]
    assert manifest["generator"].str.contains("imagecorruptions-imaug").all()
    assert manifest["label"].astype(int).tolist() == [65, 0, 65, 0]
    from PIL import Image

    for path in manifest["path"]:
        assert (first / path).read_bytes() == (second / path).read_bytes()
        with Image.open(first / path) as image:
            assert image.size == (224, 224)


# ----------------------------------------------------------------------------- ObjectNet


def test_objectnet_from_password_zip(tmp_path):
    archive = write(tmp_path / "objectnet-1.0.zip", fx.objectnet_zip())
    options = {"path": str(archive), "password": fx.OBJECTNET_PASSWORD}
    dest = prepare_dataset("objectnet", options, tmp_path / "data/objectnet")
    manifest, classes = load(dest)
    # objectnet_to_imagenet_1k.json order; names resolved through the line permutation
    assert classes["classes"] == [
        {"name": "Toilet paper", "imagenet": [999]},
        {"name": "Alarm clock", "imagenet": [409, 530]},
    ]
    assert manifest["image_id"].str.split("/").str[0].tolist() == ["toilet_paper"] * 2 + ["alarm_clock"] * 2
    assert manifest["label"].astype(int).tolist() == [0, 0, 1, 1]
    assert (manifest["border_crop"] == 2).all()
    assert not (dest / "images/objectnet-1.0/images/air_freshener").exists()  # non-overlap not extracted
    # set membership: predicting the other member of the right set is still correct
    table = scores(one_hot_logits([999, 530, 409, 530]), dest)
    assert table[("top1", "all")] == 0.75


def test_objectnet_crop_configurable_and_password_errors(tmp_path):
    archive = write(tmp_path / "objectnet-1.0.zip", fx.objectnet_zip())
    with pytest.raises(DatasetLayoutError, match="(?s)password.*objectnet.dev"):
        prepare_dataset("objectnet", {"path": str(archive)}, tmp_path / "data/o")
    with pytest.raises(DatasetLayoutError, match="cannot decrypt"):
        prepare_dataset("objectnet", {"path": str(archive), "password": "wrong"}, tmp_path / "data/o")
    with pytest.raises(DatasetLayoutError, match="objectnet.dev"):
        prepare_dataset("objectnet", {}, tmp_path / "data/o")
    dest = prepare_dataset("objectnet", {"path": str(archive), "password": fx.OBJECTNET_PASSWORD, "border_crop": 3},
                           tmp_path / "data/o")
    assert (load(dest)[0]["border_crop"] == 3).all()


# ----------------------------------------------------------------------------- video sets


@pytest.fixture(scope="module")
def vid_ytbb_archive(tmp_path_factory):
    return write(tmp_path_factory.mktemp("dl") / "imagenet_vid_ytbb_robust.tar.gz", fx.vid_ytbb_tar_gz())


def test_imagenet_vid_robust_pm_sets_and_pm_k(tmp_path, vid_ytbb_archive):
    dest = prepare_dataset("imagenet_vid_robust", {}, tmp_path / "data/vid", [vid_ytbb_archive])
    manifest, classes = load(dest)
    index = wnid_to_index()
    assert classes["classes"][1]["imagenet"] == sorted(index[w] for w in ["n02422106", "n02422699", "n02423022"])
    assert manifest["frame_offset"].astype(int).tolist() == [0, -10, 1, 0, -1]
    assert manifest["label"].tolist() == ["0", "0", "0;1", "1", "1"]
    assert manifest["anchor_id"].nunique() == 2
    airplane, antelope = classes["classes"][0]["imagenet"][0], classes["classes"][1]["imagenet"][0]
    # anchor 1 right, its -10 neighbour wrong, its +1 neighbour 'antelope' (allowed: two labels); anchor 2 all right
    table = scores(one_hot_logits([airplane, antelope, antelope, antelope, antelope]), dest)
    assert table[("pm0", "all")] == 1.0 and table[("pm10", "all")] == 0.5


def test_ytbb_robust_validity_rules_and_pm_k(tmp_path, vid_ytbb_archive):
    meta = tmp_path / "ytbb_meta"
    for name, text in fx.ytbb_metadata().items():
        write(meta / name, text)
    dest = prepare_dataset("ytbb_robust", {"metadata_dir": str(meta)}, tmp_path / "data/ytbb", [vid_ytbb_archive])
    manifest, classes = load(dest)
    assert manifest["image_id"].tolist() == [
        "vidA_1000/frame-10.jpg", "vidA_1000/frame-0.jpg", "vidA_1000/frame-9.jpg",
        "vidD_1000/frame-10.jpg", "vidE_1000/frame-10.jpg", "vidE_1000/frame-13.jpg",
    ]
    assert manifest["frame_offset"].astype(int).tolist() == [0, -10, -1, 0, 0, 3]
    # A: reviewed 'dog' + CSV 19; D: cow (no ImageNet class); E: CSV 22 read as 23 (car)
    assert manifest["label"].tolist() == ["19", "19", "19", "6", "23", "23"]
    assert classes["classes"][6] == {"name": "cow", "imagenet": []}
    assert len(classes["classes"]) == 24
    member = {k: c["imagenet"][0] for k, c in enumerate(classes["classes"]) if c["imagenet"]}
    # A: anchor and -10 right, -1 wrong; D: unpredictable; E: both right -> pm0 2/3, pm10 1/3
    table = scores(one_hot_logits([member[19], member[19], member[7], member[5], member[23], member[23]]), dest)
    assert table[("pm0", "all")] == pytest.approx(2 / 3)
    assert table[("pm10", "all")] == pytest.approx(1 / 3)


def test_ytbb_without_metadata_says_where_to_get_it(tmp_path, vid_ytbb_archive):
    with pytest.raises(DatasetLayoutError, match="(?s)metadata_dir.*anchor_labels.json"):
        prepare_dataset("ytbb_robust", {}, tmp_path / "data/ytbb", [vid_ytbb_archive])
    assert not (tmp_path / "data/ytbb").exists()
