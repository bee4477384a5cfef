"""Scoring on hand-computed cases: class mappings, multi-label, pm-k, ECE, NLL, subsets."""

import numpy as np
import pandas as pd
import pytest

from oodbench.metrics import class_scores, expected_calibration_error, pm_k_accuracy, per_image_outcomes, score_table


def logits_with_peaks(peaks, n_classes=1000, height=5.0):
    out = np.zeros((len(peaks), n_classes), np.float32)
    out[np.arange(len(peaks)), peaks] = height
    return out


CLASSES = {"dataset": "t", "source": "t", "classes": [{"name": "cat", "imagenet": [281, 282]}, {"name": "mug", "imagenet": [504]}]}


def test_superclass_is_max_over_members():
    logits = logits_with_peaks([282, 504, 7])
    scores = class_scores(logits, [[281, 282], [504]])
    np.testing.assert_array_equal(scores.argmax(1)[:2], [0, 1])


def test_top1_multilabel_and_nll():
    manifest = pd.DataFrame({"label": ["0", "0", "1", "0;1"]})
    outcomes = per_image_outcomes(logits_with_peaks([281, 504, 504, 504]), manifest, CLASSES)
    assert outcomes["correct"].tolist() == [True, False, True, True]
    # softmax over the union {281, 282, 504}: a peak of 5 vs two zeros
    p_peak = np.exp(5) / (np.exp(5) + 2)
    assert outcomes["nll"].iloc[2] == pytest.approx(-np.log(p_peak))
    assert outcomes["nll"].iloc[3] == pytest.approx(0.0, abs=1e-9)  # both classes are correct
    assert outcomes["confidence"].iloc[0] == pytest.approx(p_peak + 1 / (np.exp(5) + 2))


def test_ece_known_case():
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 1, 1, 0], bool)
    # bin (0.93,1]: acc 1 vs conf .95 → .05 ×2; bin (.53,.6]: acc .5 vs .55 → .05 ×2; /4
    assert expected_calibration_error(conf, correct) == pytest.approx(0.05)


def test_pm_k_counts_anchors_and_windows():
    manifest = pd.DataFrame({"anchor_id": ["a"] * 5 + ["b"] * 3, "frame_offset": [-2, -1, 0, 1, 2, -1, 0, 1]})
    outcomes = pd.DataFrame({"correct": [True, True, True, True, False, False, True, True]})
    assert pm_k_accuracy(outcomes, manifest, 0) == (1.0, 2)
    assert pm_k_accuracy(outcomes, manifest, 1) == (0.5, 2)
    assert pm_k_accuracy(outcomes, manifest, 2) == (0.0, 2)


def test_subsets_by_corruption_and_severity():
    manifest = pd.DataFrame({"label": ["1"] * 4, "corruption": ["fog", "fog", "snow", "snow"], "severity": [1, 2, 1, 2]})
    table = score_table(logits_with_peaks([504, 7, 504, 504]), manifest, CLASSES)
    top1 = table[table.metric == "top1"].set_index("subset")["value"]
    assert top1["all"] == 0.75
    assert top1["corruption=fog"] == 0.5 and top1["corruption=snow"] == 1.0
    assert top1["corruption=fog,severity=2"] == 0.0
    assert top1["severity=1"] == 1.0
