import pytest
import torch

from model import OCRGANVideo
from model.scales import FOREIGN_MEMORY, SCENE_SCALE_FLOOR, extreme, scene_scales
from tests.model.helpers import tiny_cfg


def test_a_cues_unit_is_its_99th_percentile_on_normal_frames():
    assert extreme(torch.arange(101.0)) == pytest.approx(99.0)
    assert extreme(torch.zeros(5)) == 1.0  # a cue that never fires keeps unit 1


def test_a_scenes_units_are_its_own_but_never_far_below_the_checkpoints():
    model = OCRGANVideo(tiny_cfg(motion=True))
    model.app_scale.fill_(0.02)
    model.speed_scale.fill_(0.4)
    cues = {"app": torch.full((50,), 0.5), "motion": None, "speed": torch.zeros(50), "feat": torch.arange(101.0)}
    s = scene_scales(model, cues)
    assert s["app"] == pytest.approx(0.5)  # a scene the model never saw: its appearance error is its own unit
    assert s["speed"] == pytest.approx(SCENE_SCALE_FLOOR * 0.4)  # nothing moves: floored, not zero
    assert s["motion"] == 1.0  # a cue not given keeps the checkpoint's unit
    assert s["feat"] == pytest.approx(99.0)


def test_a_memory_of_footage_the_scene_does_not_resemble_is_left_out_of_its_score():
    model = OCRGANVideo(tiny_cfg(motion=True, memory_size=8, memory_grey=True, w_score_mem=1.0, w_score_grey=1.0))
    for k in ("app", "motion", "mem", "grey"):
        getattr(model, f"{k}_scale").fill_(1.0)
    n = 100
    ramp = torch.linspace(0.0, 1.0, n)
    like = {"app": 0.5 * ramp, "motion": 0.5 * ramp, "speed": None, "feat": None,
            "mem": 1.2 * ramp, "grey": (FOREIGN_MEMORY - 0.01) / 0.99 * ramp}
    s = scene_scales(model, like)  # new footage of a scene like the training footage: near the checkpoint's unit
    assert s["mem"] == pytest.approx(1.2 * 0.99) and s["grey"] == pytest.approx(FOREIGN_MEMORY - 0.01)
    unlike = like | {"mem": 3.0 * ramp}  # every patch far from the remembered ones, more so the busier the frame
    s = scene_scales(model, unlike)
    assert "mem" not in s and "grey" in s and s["app"] == pytest.approx(0.5 * 0.99)
    # the score leaves the memory out: a frame far from it is scored by the other cues alone
    frame = {"app": torch.tensor([0.2]), "motion": torch.tensor([0.99]), "speed": None, "feat": None,
             "mem": torch.tensor([30.0]), "grey": torch.tensor([0.1])}
    assert float(model.combine(frame, s)) == pytest.approx(0.99 / s["motion"])
    assert float(model.combine(frame)) == pytest.approx(30.0)  # on the checkpoint's units it is the memory's
