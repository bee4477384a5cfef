"""The shared writers: readable by the group like any output, nothing partial left behind."""

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from oodbench.atomic import replacing, write_csv, write_json


def test_outputs_get_the_mode_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        import oodbench.atomic

        importlib.reload(oodbench.atomic)  # the mode is read from the umask at import
        oodbench.atomic.write_csv(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    finally:
        os.umask(old)
        importlib.reload(oodbench.atomic)
    assert stat.S_IMODE((tmp_path / "t.csv").stat().st_mode) == 0o644


def test_a_failed_write_leaves_neither_output_nor_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with replacing(tmp_path / "out.csv") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_json_summaries_take_numpy_values_and_turn_nan_into_null(tmp_path):
    write_json({"n": np.int64(3), "r": np.float32(0.5), "bad": float("nan"), "ok": np.bool_(True), "xs": (1, np.inf)}, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text()) == {"n": 3, "r": 0.5, "bad": None, "ok": True, "xs": [1, None]}


def test_csv_rows_are_written(tmp_path):
    write_csv(pd.DataFrame({"a": [1, 2]}), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == "a\n1\n2\n"
