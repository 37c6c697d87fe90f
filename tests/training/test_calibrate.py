import numpy as np
import pytest
import torch

from model import OCRGANVideo, iter_clip_scores, score_clip
from model.scales import cue_values, extreme
from tests.model.helpers import tiny_cfg
from training import calibrate as calibrate_module
from training.calibrate import calibrate, fit_memory, fit_units


def test_calibration_normalises_normal_footage():
    model = OCRGANVideo(tiny_cfg(score_smoothing=0.3)).eval()
    seqs = [torch.rand(30, 1, 32, 32) * 2 - 1 for _ in range(3)]
    stats = calibrate(model, seqs, quantile=0.9)
    assert stats["frames"] == 90 and stats["rec_scale"] > 0 and stats["feat_scale"] > 0
    norm = np.concatenate([score_clip(model, s).normalised.numpy() for s in seqs])
    assert norm.mean() == pytest.approx(0, abs=1e-4) and norm.std() == pytest.approx(1, abs=1e-3)
    assert stats["threshold"] == pytest.approx(np.quantile(norm, 0.9), abs=1e-4)
    assert (norm > float(model.threshold)).mean() == pytest.approx(0.1, abs=0.02)


def test_calibration_needs_frames():
    with pytest.raises(ValueError, match="at least one frame"):
        calibrate(OCRGANVideo(tiny_cfg()), [])


def test_units_take_more_normal_footage_into_account_but_never_fall_below_the_held_out_clips():
    model = OCRGANVideo(tiny_cfg()).eval()
    g = torch.Generator().manual_seed(0)
    calm = [torch.rand(30, 1, 32, 32, generator=g) * 0.2 for _ in range(2)]  # little to reconstruct
    busy = [torch.rand(30, 1, 32, 32, generator=g) * 2 - 1 for _ in range(2)]
    alone = dict(fit_units(model, calm))
    with_busy = dict(fit_units(model, calm, busy))

    def extremes(seqs):
        return {k: extreme(v) for k, v in cue_values([p for s in seqs for p in iter_clip_scores(model, s)]).items()
                if v is not None}

    assert with_busy["app"] > alone["app"]  # the busier footage strays further
    assert with_busy["app"] == pytest.approx(extremes(calm + busy)["app"], rel=1e-4)
    units = fit_units(model, busy, calm)
    assert {k: units[k] for k in ("app", "feat")} == pytest.approx(extremes(busy))  # calmer footage never lowers one


def test_the_memory_is_filled_from_every_frames_patches_or_a_share_of_long_footage(monkeypatch):
    cfg = tiny_cfg(memory_size=32, score_patch=4)
    model = OCRGANVideo(cfg).eval()
    seqs = [torch.rand(20, 1, 32, 32) * 2 - 1 for _ in range(2)]
    assert fit_memory(model, seqs) == 40 * 8 * 8  # 40 frames of 8x8 patches
    assert model.memory.abs().sum(1).gt(0).all()
    monkeypatch.setattr(calibrate_module, "MAX_PATCHES", 640)
    assert 400 < fit_memory(model, seqs) < 900  # about a quarter of the patches
    assert fit_memory(OCRGANVideo(tiny_cfg()), seqs) == 0  # no memory to fill
