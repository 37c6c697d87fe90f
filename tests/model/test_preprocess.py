import numpy as np
import pytest
import torch

from model import OCRGANConfig, input_spec, preprocess


def test_grey_frames_to_a_colour_model():
    cfg = OCRGANConfig(isize=(32, 48), nc=3)
    frames = np.full((4, 60, 90), 255, np.uint8)
    x = preprocess(frames, cfg)
    assert x.shape == (4, 3, 32, 48) and x.dtype == torch.float32
    assert torch.allclose(x, torch.ones_like(x))


def test_colour_frames_to_a_luma_model_use_bt601():
    cfg = OCRGANConfig(isize=16, nc=1)
    frames = np.zeros((1, 16, 16, 3), np.uint8)
    frames[..., 1] = 255  # pure green
    x = preprocess(frames, cfg)
    assert x.shape == (1, 1, 16, 16)
    assert torch.allclose(x, torch.full_like(x, 0.587 * 255 / 127.5 - 1), atol=1e-5)


def test_range_and_resizing():
    cfg = OCRGANConfig(isize=64, nc=1)
    frames = np.random.default_rng(0).integers(0, 256, (2, 240, 360), dtype=np.uint8)
    x = preprocess(torch.from_numpy(frames), cfg)
    assert x.shape == (2, 1, 64, 64) and x.min() >= -1 and x.max() <= 1
    black = preprocess(np.zeros((1, 8, 8), np.uint8), OCRGANConfig(isize=8, nc=1))
    assert torch.equal(black, -torch.ones(1, 1, 8, 8))


def test_same_size_input_is_not_resampled():
    cfg = OCRGANConfig(isize=8, nc=1)
    frames = np.arange(64, dtype=np.uint8).reshape(1, 8, 8)
    assert torch.allclose(preprocess(frames, cfg)[0, 0], torch.from_numpy(frames).float() / 127.5 - 1)


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8), np.float32), np.zeros((8,), np.uint8),
                                 np.zeros((1, 8, 8, 2), np.uint8)])
def test_bad_inputs(bad):
    with pytest.raises((TypeError, ValueError)):
        preprocess(bad, OCRGANConfig(isize=8))


def test_spec_describes_the_input():
    spec = input_spec(OCRGANConfig(isize=(120, 180), nc=1, depth=2))
    assert spec["height"] == 120 and spec["width"] == 180 and spec["colour"] == "luma"
