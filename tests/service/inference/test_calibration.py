"""Calibration, the one concept cameras and clips share: a scene's own units for each cue and the mean/std of the
scores they give, floored; a clip's opening seconds by its own timestamps, a camera's learned calibration, and each
refusal with its reason."""

from __future__ import annotations

import pytest
import torch

from model import OCRGANConfig, OCRGANVideo
from model.scales import SCENE_SCALE_FLOOR, scene_scales
from service.errors import ServiceError
from service.inference.calibration import (
    MIN_FRAMES,
    Calibration,
    CalibrationState,
    CameraScale,
    CheckpointScale,
    OpeningScale,
    frame_cues,
)


@pytest.fixture(scope="module")
def model():
    m = OCRGANVideo(OCRGANConfig(isize=16, nc=1, ngf=4, ndf=4, nz=4, num_frames=4, stride=2, motion=True,
                                 w_score_app=0.5, w_score_speed=1.0, w_score_feat=0.25))
    m.set_score_statistics(0.5, 0.1, 3.0)
    for k, v in {"app": 0.02, "motion": 0.3, "speed": 0.3, "feat": 0.1}.items():
        getattr(m, f"{k}_scale").fill_(v)
    return m


def cues(n: int, seed: int = 0, **level: float) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = {"app": 0.02, "motion": 0.3, "speed": 0.3, "feat": 0.1} | level
    return {k: v * (1 + 0.2 * torch.rand(n, generator=g)) for k, v in base.items()}


def test_calibration_learns_the_scenes_units_then_its_mean_and_std(model):
    c = cues(100, app=0.4)  # a scene whose appearance error is 20 times the training scene's
    cal = Calibration(100, model)
    done = [cal.add(frame_cues(c, i)) for i in range(100)]
    assert done[-1] and not any(done[:-1]) and cal.state is CalibrationState.DONE
    assert cal.scales == scene_scales(model, c)
    assert cal.scales["app"] == pytest.approx(float(torch.quantile(c["app"], 0.99)), rel=1e-6)
    raw = model.combine(c, cal.scales)  # in the scene's units no cue is far above 1 on its normal frames
    assert raw.max() < 1.01
    assert cal.mean == pytest.approx(float(raw.mean()), rel=1e-5)
    assert cal.std == pytest.approx(max(float(raw.std()), 0.05 * float(raw.mean())), rel=1e-4)
    assert cal.smoothed == pytest.approx(float(raw[-1]))  # no smoothing: the state is the last score


def test_a_still_scenes_units_and_spread_are_floored(model):
    c = cues(10, speed=0.0, motion=0.0)
    cal = Calibration(10, model)
    for i in range(10):
        cal.add(frame_cues(c, i))
    assert cal.scales["speed"] == pytest.approx(SCENE_SCALE_FLOOR * 0.3)  # not a unit of zero
    flat = Calibration(10, model)
    for _ in range(10):
        flat.add({"app": 0.02, "motion": 0.3, "speed": 0.3, "feat": 0.1})
    assert flat.std == pytest.approx(0.05 * flat.mean)


def test_the_heatmap_scale_is_the_warm_ups_mean_score_in_the_scenes_units(model):
    """A scene whose every cue runs ten times the checkpoint's: in its own units its frames score about 1 (its
    largest weight), and its heatmap, drawn in those units, is drawn relative to that, not to ten."""
    cal = Calibration(20, model)
    assert cal.heatmap_scale is None
    c = cues(20, app=0.2, motion=3.0, speed=3.0, feat=1.0)
    for i in range(20):
        cal.add(frame_cues(c, i))
    assert 0.8 < cal.heatmap_scale <= 1.0
    shown = {k: c[k] for k in ("app", "motion", "speed")}  # the feature distance has no map: not in the heatmap
    assert cal.heatmap_scale == pytest.approx(float(model.combine(shown, cal.scales).mean()))


def test_the_opening_seconds_are_counted_from_the_first_frames_timestamp(model):
    """30 fps starting at t = 5 s (timestamps rounded to microseconds, as decoding gives them): the first
    0.5 s are exactly 15 frames, the frame at 5.5 s is not one of them."""
    stamps = [round(5.0 + i / 30, 6) for i in range(40)]
    c = cues(40)
    c["speed"][15:] = 3.0  # something fast once the opening is over
    s = OpeningScale(0.5).resolve(model, c, stamps)
    ref = Calibration(15, model)
    for i in range(15):
        ref.add(frame_cues(c, i))
    assert s.opening == 15 and (s.mean, s.std, s.scales) == (ref.mean, ref.std, ref.scales)
    assert s.describe() == {"source": "clip", "seconds": 0.5, "frames": 15, "mean": ref.mean, "std": ref.std,
                            "scales": ref.scales}


def test_opening_seconds_that_leave_nothing_or_too_little_are_refused(model):
    stamps = [i / 25 for i in range(30)]  # 1.16 s from first to last frame
    with pytest.raises(ServiceError) as e:
        OpeningScale(1.2).resolve(model, cues(30), stamps)
    assert e.value.status == 422 and "cover all 30 frames" in e.value.message
    with pytest.raises(ServiceError) as e:
        OpeningScale(0.2).resolve(model, cues(30), stamps)  # 5 frames
    assert e.value.status == 422 and f"hold 5 frame(s); calibrating needs at least {MIN_FRAMES}" in e.value.message
    assert OpeningScale(0.4).resolve(model, cues(30), stamps).opening == MIN_FRAMES


def test_the_checkpoint_scale_is_the_checkpoints_statistics(model):
    s = CheckpointScale().resolve(model, cues(3), [0.0, 0.04, 0.08])
    assert (s.mean, s.std, s.opening, s.scales) == (pytest.approx(0.5), pytest.approx(0.1), 0, None)
    assert s.describe() == "checkpoint"


def camera_view(state, frames=250, target=250, calibrate=True):
    return {"id": "gate", "state": "running", "calibrate": calibrate,
            "normalisation": {"mean": 0.3, "std": 0.02, "threshold": 3.0, "calibration": state,
                              "calibration_frames": frames, "calibration_target": target,
                              "scales": {"app": 0.5, "motion": 0.3, "speed": 0.3, "feat": 0.1}}}


def test_a_cameras_calibration_is_taken_once_it_has_one(model):
    scale = CameraScale.of("gate", camera_view("done"))
    s = scale.resolve(model, cues(1), [0.0])
    assert (s.mean, s.std, s.opening) == (0.3, 0.02, 0)
    assert s.scales == {"app": 0.5, "motion": 0.3, "speed": 0.3, "feat": 0.1}  # its units too
    assert s.describe() == {"source": "camera", "camera": "gate", "frames": 250, "mean": 0.3, "std": 0.02,
                            "scales": s.scales}


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


def test_a_calibration_with_a_floor_is_never_stricter_than_it(model):
    def fit(c, floor=None):
        cal = Calibration(100, model, floor=floor)
        for i in range(100):
            cal.add(frame_cues(c, i))
        return cal

    warm_up = fit(cues(100, app=0.4))
    t = float(model.threshold)
    calm = {"app": 0.1, "speed": 0.15, "motion": 0.15}  # the same scene, quieter: half the motion
    quiet = fit(cues(100, **calm), floor=warm_up)
    assert quiet.scales == warm_up.scales and (quiet.mean, quiet.std) == (warm_up.mean, warm_up.std)
    alone = fit(cues(100, **calm))  # without the floor: smaller units, stricter
    assert all(alone.scales[k] < warm_up.scales[k] for k in calm)

    def flagged(cal: Calibration, c: dict[str, torch.Tensor]) -> float:
        return float(((model.combine(c, cal.scales) - cal.mean) / cal.std > t).float().mean())

    usual = cues(100, seed=5, app=0.4)  # the warm-up's kind of frame
    assert flagged(alone, usual) == 1.0 and flagged(quiet, usual) == flagged(warm_up, usual) < 0.05
    busy = fit(cues(100, seed=2, app=0.8), floor=warm_up)  # a busier scene: its own, more tolerant
    assert busy.scales["app"] == pytest.approx(float(torch.quantile(cues(100, seed=2, app=0.8)["app"], 0.99)))
    assert busy.mean + t * busy.std >= warm_up.mean + t * warm_up.std
    assert all(busy.scales[k] >= warm_up.scales[k] for k in warm_up.scales)


def test_a_memory_left_out_by_the_floor_or_the_scene_stays_out(model):
    """The floor is never made stricter: a memory the camera's first warm-up left out (its scene did not look like
    the training footage) is not brought back by a later one, nor kept when the later one leaves it out."""
    m = OCRGANVideo(OCRGANConfig(isize=16, nc=1, ngf=4, ndf=4, nz=4, num_frames=4, stride=2, motion=True,
                                 memory_size=8, w_score_mem=1.0))
    m.set_score_statistics(0.5, 0.1, 3.0)
    for k, v in {"app": 0.02, "motion": 0.3, "speed": 0.3, "feat": 0.1, "mem": 1.0}.items():
        getattr(m, f"{k}_scale").fill_(v)

    def fit(c, floor=None):
        cal = Calibration(100, m, floor=floor)
        for i in range(100):
            cal.add(frame_cues(c, i))
        return cal

    like, unlike = cues(100, mem=1.0), cues(100, mem=5.0)
    assert "mem" in fit(like).scales and "mem" not in fit(unlike).scales
    assert "mem" not in fit(like, floor=fit(unlike)).scales
    assert "mem" not in fit(unlike, floor=fit(like)).scales
    assert fit(like, floor=fit(like)).scales["mem"] == pytest.approx(fit(like).scales["mem"])
