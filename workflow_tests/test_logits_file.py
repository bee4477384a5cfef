"""The logits contract: float16, aligned ids, provenance, atomic write, digest refusal."""

import h5py
import numpy as np
import pytest

from oodbench.logits_file import read_logits, write_logits


def test_round_trip_and_attributes(tmp_path):
    logits = np.random.default_rng(0).normal(size=(5, 1000)).astype(np.float16)
    out = tmp_path / "m" / "d" / "224.h5"
    write_logits(out, logits, [f"id{i}" for i in range(5)], {"model": "m", "manifest_digest": "abc", "preprocessing": {"crop": 224}})
    assert [p.name for p in out.parent.iterdir()] == ["224.h5"], "a temporary file was left behind"
    values, attrs = read_logits(out, manifest_digest="abc", expected_rows=5)
    np.testing.assert_array_equal(values, logits.astype(np.float32))
    assert attrs["preprocessing"] == {"crop": 224} and attrs["model"] == "m"
    with h5py.File(out) as h5:
        assert h5["logits"].dtype == np.float16
        assert h5["image_id"][2].decode() == "id2"


def test_refuses_logits_from_another_manifest(tmp_path):
    out = tmp_path / "x.h5"
    write_logits(out, np.zeros((2, 1000), np.float16), ["a", "b"], {"manifest_digest": "old"})
    with pytest.raises(ValueError, match="different manifest"):
        read_logits(out, manifest_digest="new")
    with pytest.raises(ValueError, match="3"):
        read_logits(out, manifest_digest="old", expected_rows=3)


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "y.h5"
    with pytest.raises(TypeError):
        write_logits(out, np.zeros((2, 1000), np.float16), ["a", "b"], {"bad": object()})
    assert list(tmp_path.iterdir()) == []
