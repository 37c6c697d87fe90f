"""Per-camera post-processing: calibration warm-up and anomaly events with hysteresis."""

from __future__ import annotations

import pytest
import torch

from model import WindowScores
from service.stream_scores import Calibration, CalibrationState, EventTracker, StreamScoring


def test_events_need_k_anomalous_frames_to_start_and_m_normal_to_end():
    ev = EventTracker(start=3, end=2)
    seq = [True, True, False, True, True, True, False, True, False, False, True]
    out = [ev.update(a, 5.0 if a else 0.0, float(i)) for i, a in enumerate(seq)]
    assert out == [None, None, None, None, None, "start", None, None, None, "end", None]
    assert ev.started_at == 5.0 and ev.peak == 5.0


def test_calibration_learns_mean_and_std():
    cal = Calibration(frames=100)
    xs = torch.randn(100, generator=torch.Generator().manual_seed(0)) * 0.2 + 2.0
    done = [cal.add(float(x)) for x in xs]
    assert done[-1] and not any(done[:-1]) and cal.state is CalibrationState.DONE
    assert cal.mean == pytest.approx(float(xs.mean()), abs=1e-6)
    assert cal.std == pytest.approx(float(xs.std()), rel=1e-4)


def test_static_scene_std_is_floored():
    cal = Calibration(frames=10)
    for _ in range(10):
        cal.add(1.0)
    assert cal.std == pytest.approx(0.05)


class _Host:
    def __init__(self, mean=0.0, std=1.0, threshold=3.0):
        from model import OCRGANConfig, OCRGANVideo

        self.model = OCRGANVideo(OCRGANConfig(isize=16, nc=1, ngf=4, ndf=4, nz=4, num_frames=4, stride=2))
        self.model.set_score_statistics(mean, std, threshold)


def scores(indices, values):
    t = torch.tensor(values)
    return WindowScores(indices, t, None, t, t)


def test_stream_scoring_messages_and_calibration():
    s = StreamScoring("cam", _Host(), calibrate=True, calibration_frames=4, event_start=2, event_end=2)
    msgs = s.consume(scores([0, 1], [10.0, 10.0]), [100.0, 100.1])
    assert [m["type"] for m in msgs] == ["score", "score"]
    assert msgs[0] == {"type": "score", "stream_id": "cam", "frame_index": 0, "timestamp": 100.0, "score": 10.0,
                       "normalised": 10.0, "anomaly": False}  # held back while warming up
    s.consume(scores([2, 3], [10.0, 10.0]), [100.2, 100.3])
    assert s.describe()["normalisation"]["calibration"] == "done"
    assert s.post.mean == pytest.approx(10.0)
    msgs = s.consume(scores([4, 5, 6], [10.0, 20.0, 20.0]), [100.4, 100.5, 100.6])
    kinds = [(m["type"], m.get("event")) for m in msgs]
    assert kinds == [("score", None), ("score", None), ("score", None), ("event", "start")]
    assert msgs[1]["anomaly"] and not msgs[0]["anomaly"]
    assert s.describe()["anomaly_active"] and s.events_started == 1
