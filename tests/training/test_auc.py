import numpy as np
import pytest

from training.auc import auc_report, clip_auc, gaussian, minmax, protocols, threshold_report


def test_micro_and_macro_auc_by_hand():
    # clip a: scores rank 3 of 4 positive/negative pairs right -> 0.75; clip b: all anomalous
    scores = {"a": np.array([0.1, 0.4, 0.35, 0.8]), "b": np.array([0.5, 0.6])}
    labels = {"a": np.array([0, 0, 1, 1]), "b": np.array([1, 1])}
    r = auc_report(scores, labels)
    # micro: negatives {0.1, 0.4}, positives {0.35, 0.8, 0.5, 0.6}: 7 of 8 pairs right
    assert r["micro_auc"] == pytest.approx(7 / 8)
    assert r["per_clip"] == {"a": pytest.approx(0.75)}  # the headline macro AUC: clips with both classes
    assert r["macro_auc"] == pytest.approx(0.75)
    # b gets a dummy normal at 0.5 and a dummy anomaly at 0.6: positives {0.5, 0.6, 0.6} vs negative 0.5
    assert r["per_clip_dummy"]["b"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert r["macro_auc_dummy"] == pytest.approx((0.75 + 2.5 / 3) / 2)


def test_offline_min_max_changes_micro_auc_but_online_does_not_rescale():
    raw = {"a": np.array([1.0, 2.0]), "b": np.array([10.0, 11.0])}
    labels = {"a": np.array([0, 1]), "b": np.array([0, 1])}
    p = protocols(raw, raw, labels, sigma=0)
    assert p["online"]["micro_auc"] == pytest.approx(0.75)  # b's normal frame outranks a's anomaly
    assert p["offline"]["micro_auc"] == pytest.approx(1.0)
    assert p["offline_gaussian"]["sigma"] == 0


def test_helpers():
    assert minmax(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert minmax(np.array([3.0, 3.0])).tolist() == [0.0, 0.0]
    spike = np.zeros(21)
    spike[10] = 9.0
    smoothed = gaussian(spike, 1.0)
    assert smoothed[10] < 9 and smoothed[9] == pytest.approx(smoothed[11]) and smoothed.sum() == pytest.approx(9)
    assert clip_auc(np.array([0.0, 1.0]), np.array([1, 0])) == 0.0


def test_threshold_report_by_hand():
    r = threshold_report({"a": np.array([0.0, 5.0, 1.0, 4.0])}, {"a": np.array([0, 1, 1, 0])}, threshold=3.0)
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (1, 1, 1, 1)
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["false_positive_rate"] == 0.5
