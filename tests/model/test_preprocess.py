import cv2
import numpy as np
import pytest
import torch

from model import OCRGANConfig, SequencePreprocessor, input_spec, preprocess, preprocess_sequence
from model.preprocess import DropFilter


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
    assert torch.allclose(x, torch.full_like(x, round(0.587 * 255) / 127.5 - 1))  # uint8 luma, as decoders give


def test_range_and_resizing():
    cfg = OCRGANConfig(isize=64, nc=1)
    frames = np.random.default_rng(0).integers(0, 256, (2, 240, 360), dtype=np.uint8)
    x = preprocess(torch.from_numpy(frames), cfg)
    assert x.shape == (2, 1, 64, 64) and x.min() >= -1 and x.max() <= 1
    black = preprocess(np.zeros((1, 8, 8), np.uint8), OCRGANConfig(isize=8, nc=1))
    assert torch.equal(black, -torch.ones(1, 1, 8, 8))


def test_shrinking_averages_areas():
    """Area averaging: each working pixel is the mean of the block it covers (no aliasing of fine detail)."""
    stripes = np.zeros((1, 16, 16), np.uint8)
    stripes[:, :, ::2] = 200  # one-pixel stripes: a point sampler would see all 200 or all 0
    x = preprocess(stripes, OCRGANConfig(isize=8, nc=1))
    assert torch.allclose(x, torch.full_like(x, 100 / 127.5 - 1))


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


def test_the_motion_band_is_the_flow_from_the_previous_frame():
    cfg = OCRGANConfig(isize=(32, 48), nc=1, motion=True)
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    texture = np.kron(texture, np.ones((4, 4), np.uint8))  # blobs DIS can follow
    frames = np.stack([texture[20:84, 20 + 2 * k:116 + 2 * k] for k in range(4)])  # moves 2 px left per frame
    x = preprocess_sequence(frames, cfg)
    assert x.shape == (4, 3, 32, 48)
    assert torch.equal(x[:, :1], preprocess(frames, cfg))  # appearance as for a model without the band
    assert torch.equal(x[0, 1:], torch.zeros(2, 32, 48))  # the first frame has not moved
    dx, dy = x[1:, 1, 8:-8, 8:-8], x[1:, 2, 8:-8, 8:-8]
    assert dx.median() == pytest.approx(-1.0, abs=0.15) and dy.abs().median() < 0.15  # 2 px at full size = 1 px
    prep = SequencePreprocessor(cfg)
    assert torch.equal(prep(frames[0])[1:], torch.zeros(2, 32, 48))
    assert prep(frames[1])[1:].abs().sum() > 0
    prep.reset()  # a new sequence: nothing moved yet
    assert torch.equal(prep(frames[2])[1:], torch.zeros(2, 32, 48))


def test_spec_describes_the_motion_band():
    assert "motion" not in input_spec(OCRGANConfig(isize=8, nc=1))
    spec = input_spec(OCRGANConfig(isize=8, nc=1, motion=True, depth=1))
    assert spec["channels"] == 3 and spec["motion"]["unit"] == "pixels per frame at the working size"


def test_exposure_sets_each_frames_level_and_contrast():
    cfg = OCRGANConfig(isize=(32, 48), nc=1, exposure=(-0.1, 0.3))
    rng = np.random.default_rng(0)
    scene = rng.integers(60, 160, (32, 48)).astype(np.float32)
    frames = np.stack([scene, scene * 0.6, scene * 1.4 + 10]).astype(np.uint8)  # one scene in three lights
    x = preprocess(frames, cfg)
    assert x.mean(dim=(1, 2, 3)) == pytest.approx([-0.1] * 3, abs=1e-4)
    assert x.std(dim=(1, 2, 3), correction=0) == pytest.approx([0.3] * 3, abs=1e-4)
    assert (x[1] - x[0]).abs().max() < 0.02 and (x[2] - x[0]).abs().max() < 0.02  # the light is gone (uint8 rounding)
    plain = preprocess(frames, OCRGANConfig(isize=(32, 48), nc=1))
    assert (plain[2] - plain[0]).abs().mean() > 0.3  # without it, the light is what changed most


def test_exposure_does_not_blow_up_a_blank_frame():
    cfg = OCRGANConfig(isize=8, nc=1, exposure=(0.0, 0.4))
    grey = np.full((1, 8, 8), 100, np.uint8)
    grey[0, 0, 0] = 102  # one pixel off: its own spread is tiny
    x = preprocess(grey, cfg)
    assert x.abs().max() < 0.4 * (2 / 127.5) / 0.05 * 1.01  # stretched from the floor, not from its own spread
    assert torch.isfinite(preprocess(np.zeros((1, 8, 8), np.uint8), cfg)).all()


def test_exposure_is_checked_and_travels_with_the_config():
    cfg = OCRGANConfig(isize=8, nc=1, exposure=[0.0, 0.4])
    assert cfg.exposure == (0.0, 0.4)
    assert OCRGANConfig.from_dict(cfg.to_dict()) == cfg
    assert input_spec(cfg)["exposure"]["std"] == 0.4 and "exposure" not in input_spec(OCRGANConfig(isize=8, nc=1))
    for bad in ((0.0, 0.0), (0.0, 2.0), (1.5, 0.4), (0.0,)):
        with pytest.raises(ValueError, match="exposure"):
            OCRGANConfig(isize=8, nc=1, exposure=bad)


def test_exposure_applies_on_the_streaming_path_too():
    cfg = OCRGANConfig(isize=(32, 48), nc=1, motion=True, exposure=(0.0, 0.4))
    frames = np.random.default_rng(1).integers(0, 256, (3, 64, 96), dtype=np.uint8)
    streamed = torch.stack([SequencePreprocessor(cfg)(f) for f in frames])
    assert torch.allclose(streamed[:, :1], preprocess(frames, cfg), atol=1e-6)


def test_flow_is_in_pixels_per_frame_period_whatever_the_gap():
    """A frame two periods after the one before it (one dropped in between) moved twice as far; its flow is
    halved, so a walker does not read as a cyclist."""
    cfg = OCRGANConfig(isize=(32, 48), nc=1, motion=True)
    rng = np.random.default_rng(0)
    texture = np.kron(rng.integers(0, 256, (40, 60), dtype=np.uint8), np.ones((4, 4), np.uint8))
    frames = [texture[20:84, 20 + 2 * k:116 + 2 * k] for k in range(5)]  # 2 px left per period

    def dx(interval, k):
        prep = SequencePreprocessor(cfg)
        prep(frames[0])
        return float(prep(frames[k], interval)[1, 8:-8, 8:-8].median())

    assert dx(1.0, 1) == pytest.approx(-1.0, abs=0.15)  # 2 px at the flow's size = 1 px at the working size
    assert dx(1.0, 2) == pytest.approx(-2.0, abs=0.2)  # a gap read as one period: twice as fast
    assert dx(2.0, 2) == pytest.approx(-1.0, abs=0.15)
    assert dx(4.0, 4) == pytest.approx(-1.0, abs=0.15)
    assert dx(100.0, 1) == pytest.approx(-0.25, abs=0.05)  # gaps count at most MAX_INTERVAL periods
    for unknown in (0.0, -1.0, float("nan"), float("inf")):
        assert dx(unknown, 1) == pytest.approx(-1.0, abs=0.15)


def rainy(frame: np.ndarray, seed: int, streaks: int = 8) -> np.ndarray:
    """`frame` with thin bright streaks at new places (a shower)."""
    rng = np.random.default_rng(seed)
    out = frame.astype(np.int16)
    for y, x in zip(rng.integers(0, frame.shape[0] - 8, streaks), rng.integers(0, frame.shape[1], streaks),
                    strict=True):
        out[y:y + 8, x] += 60
    return np.clip(out, 0, 255).astype(np.uint8)


def test_drops_new_in_a_frame_are_taken_out_and_the_scene_kept():
    scene = np.full((48, 64), 80, np.uint8)
    scene[:, 30] = 200  # a thin bright line of the scene: there in every frame
    drops = DropFilter()
    assert np.array_equal(drops(rainy(scene, 0)), rainy(scene, 0))  # the first frame: nothing to compare with
    wet = rainy(scene, 1)
    cleared = drops(wet)
    assert np.abs(cleared.astype(int) - scene).sum() < 0.1 * np.abs(wet.astype(int) - scene).sum()  # the streaks
    # are gone but where one fell on the last frame's (or beside the line)
    assert (cleared[:, 30] == 200).all()  # the line is there
    block = scene.copy()
    block[10:16, 40:46] = 220  # something as large as the square, new in this frame: kept
    assert np.array_equal(drops(block), block)
    drops.reset()
    assert np.array_equal(drops(rainy(scene, 2)), rainy(scene, 2))
    colour = np.repeat(rainy(scene, 3)[..., None], 3, axis=-1)
    drops(np.repeat(scene[..., None], 3, axis=-1))
    assert np.abs(drops(colour).astype(int) - scene[..., None]).sum() < 0.1 * np.abs(colour.astype(int)
                                                                                   - scene[..., None]).sum()


def snowy(scene: np.ndarray, t: int, flakes: int) -> np.ndarray:
    """`flakes` 2x2 bright flakes on a grid, falling 2 pixels a frame."""
    out = scene.copy()
    for k in range(flakes):
        y, x = 4 + 12 * (k // 12) + 2 * t, 4 + 10 * (k % 12)
        out[y:y + 2, x:x + 2] = 220
    return out


@pytest.mark.parametrize(("flakes", "snowing"), [(70, True), (10, False)])
def test_snow_is_taken_out_where_it_falls_thick_and_a_few_moving_highlights_are_kept(flakes, snowing):
    scene = np.full((96, 128), 80, np.uint8)
    scene[:, 124] = 200  # a thin bright line of the scene
    drops = DropFilter()
    for t in range(2):  # a flake is within a pixel of where it was the frame before: kept from the second frame on
        drops(snowy(scene, t, flakes))
        assert not drops.snowing
    white = snowy(scene, 2, flakes)
    left = np.abs(drops(white).astype(int) - scene).sum() / np.abs(white.astype(int) - scene).sum()
    assert drops.snowing == snowing
    if snowing:  # not where it was two frames before: the whole flake goes
        assert left < 0.05
    else:  # a few highlights moving as walkers' do: only what the frame before did not show goes
        assert 0.4 < left < 0.6
    drops.reset()
    assert np.array_equal(drops(white), white) and not drops.snowing


def test_drops_are_taken_out_before_the_flow_and_the_appearance():
    cfg = OCRGANConfig(isize=(32, 48), nc=1, motion=True)
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(np.kron(rng.integers(0, 256, (40, 60), dtype=np.uint8), np.ones((4, 4), np.uint8)),
                               (0, 0), 2.0)  # no thin bright features of its own
    frames = np.stack([texture[20:84, 20 + 2 * k:116 + 2 * k] for k in range(6)])
    wet = np.stack([rainy(f, k, streaks=60) for k, f in enumerate(frames)])
    dry = preprocess_sequence(frames, cfg)
    as_it_comes = preprocess_sequence(wet, cfg)
    cleared = preprocess_sequence(wet, cfg.replace(drops=True))
    assert (cleared[2:] - dry[2:]).abs().mean() < 0.5 * (as_it_comes[2:] - dry[2:]).abs().mean()
    assert "drops" in input_spec(cfg.replace(drops=True)) and "drops" not in input_spec(cfg)
    kept = preprocess_sequence(frames, cfg.replace(drops=True))  # no rain: a moving scene loses a little of its
    assert (kept - dry).abs().mean() < 0.2 * (as_it_comes - dry).abs().mean()  # smallest highlights, not more
