import pytest
import torch

from model import OCRGANVideo
from model.scales import SCENE_SCALE_FLOOR, extreme, scene_scales
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
