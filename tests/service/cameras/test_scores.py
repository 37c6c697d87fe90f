"""Per-camera post-processing: calibration warm-up, the heatmap scale, anomaly events with hysteresis."""

from __future__ import annotations

import pytest
import torch

from model import WindowScores
from model.scoring import local_error_map
from service.api.schemas import LastScore
from service.cameras.scores import EventTracker, StreamScoring


def test_events_need_k_anomalous_frames_to_start_and_m_normal_to_end():
    ev = EventTracker(start=3, end=2)
    seq = [True, True, False, True, True, True, False, True, False, False, True]
    out = [ev.update(a, 5.0 if a else 0.0, float(i)) for i, a in enumerate(seq)]
    assert out == [None, None, None, None, None, "start", None, None, None, "end", None]
    assert ev.started_at == 5.0 and ev.peak == 5.0


class _Host:
    def __init__(self, mean=0.0, std=1.0, threshold=3.0, **cfg):
        from model import OCRGANConfig, OCRGANVideo

        self.model = OCRGANVideo(OCRGANConfig(isize=16, nc=1, ngf=4, ndf=4, nz=4, num_frames=4, stride=2, **cfg))
        self.model.set_score_statistics(mean, std, threshold)


def scores(indices, app, feat=0.1):
    """A window's scores as the checkpoint scores them (appearance weight 1 and unit 1, so raw = app)."""
    a = torch.tensor(app)
    return WindowScores(indices, a, None, a, torch.full_like(a, feat), a)


def test_stream_scoring_messages_and_calibration():
    """A scene whose appearance error is 10 times the training scene's: the warm-up learns it as the scene's unit,
    so the scores are then about 1 on its normal frames, and twice its normal error is an anomaly."""
    s = StreamScoring("cam", "r1", _Host(), calibrate=True, calibration_frames=4, event_start=2, event_end=2)
    msgs = [m.model_dump(mode="json") for m in s.consume(scores([0, 1], [10.0, 10.0]), [100.0, 100.1])]
    assert [m["type"] for m in msgs] == ["score", "score"]
    assert msgs[0] == {"type": "score", "stream_id": "cam", "replica": "r1", "frame_index": 0, "timestamp": 100.0,
                       "score": 10.0, "normalised": 10.0, "anomaly": False}  # held back while warming up
    assert s.last == LastScore(frame_index=1, timestamp=100.1, score=10.0, normalised=10.0, anomaly=False)
    s.consume(scores([2, 3], [10.0, 10.0]), [100.2, 100.3])
    norm = s.describe()["normalisation"]
    assert norm.calibration == "done"
    assert norm.scales["app"] == pytest.approx(10.0) and norm.scales["feat"] == pytest.approx(0.25)  # floored
    assert s.post.mean == pytest.approx(1.0) and s.post.std == pytest.approx(0.05)  # in the scene's units
    msgs = [m.model_dump(mode="json") for m in s.consume(scores([4, 5, 6], [10.0, 20.0, 20.0]),
                                                          [100.4, 100.5, 100.6])]
    assert [m["score"] for m in msgs[:3]] == pytest.approx([1.0, 2.0, 2.0])
    kinds = [(m["type"], m.get("event")) for m in msgs]
    assert kinds == [("score", None), ("score", None), ("score", None), ("event", "start")]
    assert msgs[1]["anomaly"] and not msgs[0]["anomaly"]
    assert s.describe()["anomaly_active"] and s.events_started == 1
    assert msgs[3] == {"type": "event", "stream_id": "cam", "replica": "r1", "event": "start", "frame_index": 6,
                       "timestamp": 100.6, "started_at": 100.6, "peak": msgs[2]["normalised"], "at": msgs[3]["at"]}


def test_the_heatmap_scale_is_the_cameras_own_once_calibrated():
    """Before and without calibration the snapshot uses the checkpoint's rec_scale; after, the mean score of the
    camera's warm-up frames in its own units (its typical heatmap peak, in the units its heatmap is drawn in)."""
    host = _Host()
    host.model.rec_scale.fill_(0.5)
    s = StreamScoring("cam", "r1", host, calibrate=True, calibration_frames=4, event_start=2, event_end=2)
    s.consume(scores([0, 1], [1.0, 3.0]), [0.0, 0.1])
    assert s.heatmap_scale == pytest.approx(0.5)  # still warming
    s.consume(scores([2, 3], [2.0, 4.0]), [0.2, 0.3])
    unit = float(torch.quantile(torch.tensor([1.0, 3.0, 2.0, 4.0]), 0.99))  # the appearance's, of weight 1
    assert s.heatmap_scale == pytest.approx(2.5 / unit)
    s.consume(scores([4, 5], [9.0, 9.0]), [0.4, 0.5])  # later frames do not move it
    assert s.describe()["normalisation"].heatmap_scale == pytest.approx(2.5 / unit)
    off = StreamScoring("cam", "r1", host, calibrate=False, calibration_frames=4, event_start=2, event_end=2)
    off.consume(scores([0, 1, 2, 3, 4], [1.0] * 5), [0.0, 0.1, 0.2, 0.3, 0.4])
    assert off.heatmap_scale == pytest.approx(0.5)
    assert off.describe()["normalisation"].calibration == "off"


def test_a_cameras_heatmap_is_drawn_in_its_units_without_a_memory_its_scores_leave_out():
    """A scene unlike the training footage: every patch is far from the memory (ten times its unit), so the
    camera's calibration leaves the memory out of its scores, and its heatmap leaves it out too; the appearance
    map is drawn in the scene's unit of it."""
    host = _Host(memory_size=8, w_score_mem=1.0)
    model = host.model
    assert model.heat_cues == ("app", "mem")
    s = StreamScoring("cam", "r1", host, calibrate=True, calibration_frames=4, event_start=2, event_end=2)
    maps = torch.rand(2, 16, 16)
    heat, scale = s.snapshot_heat(maps)  # warming: the checkpoint's units, memory and all, and its rec_scale
    assert torch.equal(heat, model.heatmap(maps)) and scale == s.rec_scale
    a = torch.full((4,), 0.5)
    s.consume(WindowScores([0, 1, 2, 3], a, None, a, torch.full_like(a, 0.1), a, mem=torch.full_like(a, 10.0)),
              [0.0, 0.1, 0.2, 0.3])
    assert "mem" not in s.describe()["normalisation"].scales
    got, scale = s.snapshot_heat(maps)
    assert scale == s.heatmap_scale == s.calibration.heatmap_scale
    assert torch.allclose(got, local_error_map((maps[0] / 0.5)[None, None], model.cfg.score_patch)[0, 0])
    assert not torch.allclose(got, model.heatmap(maps))


def test_a_calibrated_camera_learns_its_scene_again_from_the_frames_it_did_not_flag():
    """The scene grows busier after the warm-up (its appearance error drifts from about 10 to 12): a camera that
    keeps its warm-up for good flags a frame at 13, one that recalibrates over every 8 frames (a sample of every
    second unflagged frame, 4 as in the warm-up) learns the new level and does not. Flagged frames, and frames
    scored during an anomaly event, never join what it learns."""
    def camera(recalibration_frames: int) -> StreamScoring:
        s = StreamScoring("cam", "r1", _Host(), calibrate=True, calibration_frames=4, event_start=1, event_end=1,
                          recalibration_frames=recalibration_frames)
        s.consume(scores([0, 1, 2, 3], [9.0, 10.0, 11.0, 10.0]), [0.0, 0.1, 0.2, 0.3])
        return s

    def flags(msgs) -> list[bool]:
        return [m.anomaly for m in msgs if m.type == "score"]

    kept, fresh = camera(0), camera(8)
    assert kept.sample_every == 0 and fresh.sample_every == 2
    assert flags(kept.consume(scores([4], [13.0]), [0.4])) == [True]
    assert fresh.describe()["normalisation"].recalibrations == 0
    drift = [11.5, 12.0] * 3
    msgs = fresh.consume(scores(list(range(4, 10)), drift), [0.4 + 0.1 * i for i in range(6)])
    assert not any(flags(msgs)) and fresh.recalibrations == 0  # 6 unflagged frames, 3 sampled
    # an anomaly (flagged, opening an event) and a frame during the event are not sampled
    msgs = fresh.consume(scores([10, 11], [30.0, 11.5]), [1.0, 1.1])
    assert [m.type for m in msgs] == ["score", "event", "score", "event"]
    assert fresh.next_calibration.n == 3
    fresh.consume(scores([12, 13], [11.5, 12.0]), [1.2, 1.3])  # the 8th unflagged frame completes the sample
    assert fresh.recalibrations == 1 and fresh.next_calibration is None
    norm = fresh.describe()["normalisation"]
    assert norm.recalibrations == 1 and norm.calibration == "done"
    assert norm.scales["app"] == pytest.approx(12.0, rel=0.01)  # the 30 never entered the new unit
    assert flags(fresh.consume(scores([14], [13.0]), [1.4])) == [False]
    assert flags(fresh.consume(scores([15], [30.0]), [1.5])) == [True]  # still an anomaly
    # a quiet spell learnt again never makes the camera stricter than its warm-up: 12 stays normal
    quiet = fresh.consume(scores(list(range(16, 24)), [5.0] * 8), [1.6 + 0.1 * i for i in range(8)])
    assert not any(flags(quiet)) and fresh.recalibrations == 2
    norm = fresh.describe()["normalisation"]
    assert norm.scales["app"] == pytest.approx(fresh.warm_up.scales["app"])
    assert (norm.mean, norm.std) == (pytest.approx(fresh.warm_up.mean), pytest.approx(fresh.warm_up.std))
    assert flags(fresh.consume(scores([24], [12.0]), [2.4])) == [False]


def test_recalibration_is_off_without_calibration():
    s = StreamScoring("cam", "r1", _Host(), calibrate=False, calibration_frames=4, event_start=2, event_end=2,
                      recalibration_frames=8)
    s.consume(scores(list(range(20)), [1.0] * 20), [0.1 * i for i in range(20)])
    assert s.sample_every == 0 and s.describe()["normalisation"].recalibrations is None
