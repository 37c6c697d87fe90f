import numpy as np
import pytest
import torch

from model import OCRGANVideo, score_clip
from tests.model.helpers import tiny_cfg
from training.calibrate import calibrate


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
