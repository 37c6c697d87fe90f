"""Calibration, the one concept cameras and clips share: Welford statistics with a floored std, a clip's
opening seconds by its own timestamps, a camera's learned statistics, and each refusal with its reason."""

from __future__ import annotations

import pytest
import torch

from model import OCRGANConfig, OCRGANVideo
from service.calibration import (
    MIN_FRAMES,
    Calibration,
    CalibrationState,
    CameraScale,
    CheckpointScale,
    OpeningScale,
)
from service.errors import ServiceError


@pytest.fixture(scope="module")
def model():
    m = OCRGANVideo(OCRGANConfig(isize=16, nc=1, ngf=4, ndf=4, nz=4, num_frames=4, stride=2))
    m.set_score_statistics(0.5, 0.1, 3.0)
    return m


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


def test_heatmap_scale_is_the_mean_rec_of_the_warm_up():
    cal = Calibration(frames=3)
    assert cal.heatmap_scale is None
    for x, rec in [(1.0, 0.1), (2.0, 0.2), (3.0, 0.6)]:
        cal.add(x, rec)
    assert cal.heatmap_scale == pytest.approx(0.3)


def test_the_opening_seconds_are_counted_from_the_first_frames_timestamp(model):
    """30 fps starting at t = 5 s (timestamps rounded to microseconds, as decoding gives them): the first
    0.5 s are exactly 15 frames, the frame at 5.5 s is not one of them."""
    stamps = [round(5.0 + i / 30, 6) for i in range(40)]
    scores = [0.2 + 0.01 * (i % 5) for i in range(15)] + [1.0] * 25
    s = OpeningScale(0.5).resolve(model, scores, stamps)
    ref = Calibration(15)
    for x in scores[:15]:
        ref.add(x)
    assert s.opening == 15 and (s.mean, s.std) == (ref.mean, ref.std)
    assert s.describe() == {"source": "clip", "seconds": 0.5, "frames": 15, "mean": ref.mean, "std": ref.std}


def test_opening_seconds_that_leave_nothing_or_too_little_are_refused(model):
    stamps = [i / 25 for i in range(30)]  # 1.16 s from first to last frame
    with pytest.raises(ServiceError) as e:
        OpeningScale(1.2).resolve(model, [0.1] * 30, stamps)
    assert e.value.status == 422 and "cover all 30 frames" in e.value.message
    with pytest.raises(ServiceError) as e:
        OpeningScale(0.2).resolve(model, [0.1] * 30, stamps)  # 5 frames
    assert e.value.status == 422 and f"hold 5 frame(s); calibrating needs at least {MIN_FRAMES}" in e.value.message
    assert OpeningScale(0.4).resolve(model, [0.1] * 30, stamps).opening == MIN_FRAMES


def test_the_checkpoint_scale_is_the_checkpoints_statistics(model):
    s = CheckpointScale().resolve(model, [0.1] * 3, [0.0, 0.04, 0.08])
    assert (s.mean, s.std, s.opening) == (pytest.approx(0.5), pytest.approx(0.1), 0)
    assert s.describe() == "checkpoint"


def camera_view(state, frames=250, target=250, calibrate=True):
    return {"id": "gate", "state": "running", "calibrate": calibrate,
            "normalisation": {"mean": 0.3, "std": 0.02, "threshold": 3.0, "calibration": state,
                              "calibration_frames": frames, "calibration_target": target}}


def test_a_cameras_calibration_is_taken_once_it_has_one(model):
    scale = CameraScale.of("gate", camera_view("done"))
    s = scale.resolve(model, [0.1], [0.0])
    assert (s.mean, s.std, s.opening) == (0.3, 0.02, 0)
    assert s.describe() == {"source": "camera", "camera": "gate", "frames": 250, "mean": 0.3, "std": 0.02}


@pytest.mark.parametrize(("view", "status", "words"), [
    (None, 404, "no camera 'gate'"),
    (camera_view("warming", frames=37), 409, "still calibrating (37/250 frames)"),
    (camera_view("off", frames=None, target=None, calibrate=False), 409, '"calibrate": false'),
    ({"id": "gate", "state": "pending", "calibrate": True}, 409, "pending and not scored by any replica yet"),
], ids=["unknown", "warming", "off", "pending"])
def test_a_camera_without_a_calibration_is_refused(view, status, words):
    with pytest.raises(ServiceError) as e:
        CameraScale.of("gate", view)
    assert e.value.status == status and words in e.value.message, e.value.message
