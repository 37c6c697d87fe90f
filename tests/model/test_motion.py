import cv2
import numpy as np
import pytest
import torch

from model import OCRGANConfig, input_spec, preprocess_sequence
from model.motion import (
    CAMERA_KEEPS,
    CAMERA_STILL,
    FlowEstimator,
    Steadier,
    _affine_basis,
    camera_motion,
    changed,
    sequence_flow,
)
from testkit.synthetic import moving_shapes

H, W = 64, 96


def field(params: np.ndarray) -> np.ndarray:
    return (_affine_basis(H, W) @ params).reshape(H, W, 2).astype(np.float32)


def ground(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, (H // 4, W // 4), dtype=np.uint8), np.ones((4, 4), np.uint8))


def moved(img: np.ndarray, params: np.ndarray) -> np.ndarray:
    """`img` as a camera that moved by `params` sees it next."""
    f = field(params)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    return cv2.remap(img, xs - f[..., 0], ys - f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_the_cameras_motion_is_fitted_past_what_moves_in_the_scene():
    rng = np.random.default_rng(0)
    sway = np.array([[1.5, -0.8], [0.6, 0.2], [-0.3, 0.5]])  # a shift, a little rotation and zoom
    prev = ground()
    flow = field(sway) + rng.normal(0, 0.05, (H, W, 2)).astype(np.float32)
    flow[10:40, 20:60] = (-4.0, 3.0)  # a fifth of the frame moves its own way
    assert np.allclose(camera_motion(flow, prev, moved(prev, sway)), sway, atol=0.05)
    steady = Steadier()(flow, prev, moved(prev, sway))
    assert steady.dtype == np.float32
    background = np.ones((H, W), bool)
    background[10:40, 20:60] = False
    assert np.abs(steady[background]).mean() < 0.06  # what is left of the background is the noise
    assert np.allclose(steady[25, 40], (-4.0, 3.0) - field(sway)[25, 40], atol=0.1)


def test_a_still_cameras_flow_is_left_as_it_is():
    rng = np.random.default_rng(1)
    flow = rng.normal(0, 0.03, (H, W, 2)).astype(np.float32)
    flow[5:25, 5:15] = (2.0, 0.0)  # a walker
    still = ground()
    assert not camera_motion(flow, still, still).any()
    assert np.array_equal(Steadier()(flow, still, still), flow)
    shift = np.array([[2 * CAMERA_STILL] * 2, [0.0, 0.0], [0.0, 0.0]])  # twice the still threshold: the camera's
    flow += np.float32(2 * CAMERA_STILL)
    assert camera_motion(flow, still, moved(still, shift))[0] == pytest.approx([2 * CAMERA_STILL] * 2, abs=0.02)


def test_flow_the_frames_do_not_bear_out_is_not_the_cameras():
    """Walkers crossing a ground striped along their way: optical flow fills the ground with their motion, but no warp
    of the ground brings it closer to the next frame, so the camera is still."""
    frames, _ = moving_shapes(16, seed=1)
    flow = sequence_flow(frames)
    assert np.mean([np.median(f[..., 0]) > 0.3 for f in flow[1:]]) > 0.5  # the ground reads as moving with them
    assert not any(camera_motion(f, frames[i - 1], frames[i]).any() for i, f in enumerate(flow) if i)
    sway = np.array([[0.8, 0.0], [0.0, 0.0], [0.0, 0.0]])
    assert camera_motion(flow[3], frames[2], moved(frames[2], sway)).any()  # the ground itself moved: confirmed
    # frame after frame, as a camera's flow is made: never taken for the camera's motion, so it never starts a sway
    assert np.array_equal(sequence_flow(frames, steady=True), flow)


def noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 8.0) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_a_sway_goes_on_being_taken_out_on_weaker_evidence():
    """A fifth of a pixel in sensor noise of 8 grey levels: too little for the frames alone to bear the camera's
    motion out, but enough once the camera has been seen moving the frame before."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(ground(0), (0, 0), 1.0)
    small = np.array([[0.2, 0.0], [0.0, 0.0], [0.0, 0.0]])
    prev, cur = noisy(scene, rng), noisy(moved(scene, small), rng)
    flow = field(small)
    assert not camera_motion(flow, prev, cur).any()
    assert camera_motion(flow, prev, cur, CAMERA_KEEPS)[0] == pytest.approx([0.2, 0.0], abs=0.02)
    steadier = Steadier()
    assert np.array_equal(steadier(flow, prev, cur), flow)  # a camera not seen moving: left as it is
    big = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    steadier(field(big), scene, moved(scene, big))  # the gust starts
    assert steadier.moving
    assert np.abs(steadier(flow, prev, cur)).max() < 0.02  # ... and goes on
    steadier.reset()
    assert not steadier.moving


def test_a_mover_covering_most_of_the_frame_is_taken_for_the_camera():
    """The documented limit: the camera's motion is the motion of most of the frame."""
    flow = np.zeros((H, W, 2), np.float32)
    flow[:, : W * 3 // 4] = (3.0, 0.0)
    prev = ground()
    cur = prev.copy()
    cur[:, 3: W * 3 // 4] = prev[:, : W * 3 // 4 - 3]
    assert camera_motion(flow, prev, cur)[0] == pytest.approx([3.0, 0.0], abs=0.05)


def panning(k: int, camera: int, obj: int) -> np.ndarray:
    """Frame k of a textured scene panned `camera` px per frame, with a textured block moving `obj` px per frame
    across the frame."""
    rng = np.random.default_rng(2)
    scene = np.kron(rng.integers(0, 256, (40, 60), dtype=np.uint8), np.ones((4, 4), np.uint8))
    block = np.kron(rng.integers(0, 256, (6, 6), dtype=np.uint8), np.ones((4, 4), np.uint8))
    frame = scene[40:40 + H, 40 + camera * k:40 + camera * k + W].copy()
    frame[20:44, 10 + obj * k:34 + obj * k] = block
    return frame


def test_the_estimator_takes_a_pan_out_of_the_flow():
    frames = [panning(k, camera=2, obj=3) for k in range(4)]
    raw, steady = FlowEstimator(), FlowEstimator(steady=True)
    for f in frames[:3]:
        r, s = raw(f), steady(f)
    # the background reads -2 px per frame raw (the scene slides left) and about 0 steady
    assert np.median(r[50:, :, 0]) == pytest.approx(-2.0, abs=0.2)
    assert np.abs(np.median(s[50:], axis=(0, 1))).max() < 0.2
    # the block moves 3 px right across the frame while the scene slides 2 px left: 5 px against the scene
    assert np.median(r[26:38, 22:34, 0]) == pytest.approx(3.0, abs=0.5)
    assert np.median(s[26:38, 22:34, 0]) == pytest.approx(5.0, abs=0.5)


def test_a_steady_models_motion_band_reads_the_scene_not_the_camera():
    cfg = OCRGANConfig(isize=(32, 48), nc=1, motion=True, steady=True)
    frames = np.stack([panning(k, camera=2, obj=0) for k in range(4)])
    x = preprocess_sequence(frames, cfg)
    raw = preprocess_sequence(frames, OCRGANConfig(isize=(32, 48), nc=1, motion=True))
    assert torch.equal(x[:, :1], raw[:, :1])  # the same appearance
    assert raw[1:, 1, 24:].median() == pytest.approx(-1.0, abs=0.15)  # 2 px at the flow's size = 1 px
    assert x[1:, 1:, 24:].abs().median() < 0.1
    assert "camera's own motion" in input_spec(cfg)["motion"]["flow"]
    assert "camera" not in input_spec(OCRGANConfig(isize=(32, 48), nc=1, motion=True))["motion"]["flow"]


def flat_walker(t: int, speed: float = 1.2, noise: float = 2.0, seed: int = 0) -> np.ndarray:
    """A smooth, noisy background (nothing for the flow to hold on to) and a bright walker moving left."""
    rng = np.random.default_rng(seed + t)
    yy, xx = np.mgrid[0:H, 0:W]
    img = (60 + 40 * xx / W + 20 * np.sin(yy / 7.0)).astype(np.float32)
    cv2.ellipse(img, (int(70 - speed * t), 32), (3, 6), 0, 0, 360, 200.0, -1)
    return np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)


def test_a_change_is_where_the_mover_is_not_where_the_noise_is():
    prev, cur = flat_walker(4), flat_walker(5)
    mask = changed(prev, cur, reach=0)
    assert mask[26:38, 62:70].any()  # the walker's edges
    assert mask.mean() < 0.02  # a noisy pixel here and there is not a change
    near = changed(prev, cur, reach=4)
    assert near[32, 66]  # inside the walker, within reach of its edges
    assert not near[:, :40].any()
    assert not changed(prev, prev, reach=4).any()


def test_gated_flow_has_no_noise_from_flat_ground_and_keeps_a_slow_walker():
    frames = np.stack([flat_walker(t) for t in range(8)])
    raw, gated = sequence_flow(frames)[1:], sequence_flow(frames, gated=True)[1:]
    speed = lambda f: np.hypot(f[..., 0], f[..., 1])  # noqa: E731
    walker = (slice(None), slice(28, 37), slice(58, 66))
    assert np.median(speed(raw)[:, :, :40]) > 0.3  # flat ground: the raw flow is noise as long as a walker's step
    assert np.abs(gated[:, :, :40]).max() == 0
    assert np.median(gated[walker][..., 0]) == pytest.approx(-1.2, abs=0.4)  # the walker keeps its flow
    assert np.median(gated[walker][..., 0]) == pytest.approx(np.median(raw[walker][..., 0]), abs=0.1)


class CountingDIS:
    """Wraps an estimator's DIS and counts the frames it is given."""

    def __init__(self, dis) -> None:
        self.dis, self.calls = dis, 0

    def calc(self, prev, cur, flow):
        self.calls += 1
        return self.dis.calc(prev, cur, flow)

    def __getattr__(self, name):
        return getattr(self.dis, name)


@pytest.mark.parametrize("steady", [False, True])
def test_a_gated_estimator_gives_dis_only_the_frames_that_changed(steady):
    still = [flat_walker(0, speed=0.0, seed=s) for s in range(5)]  # the walker stands; only the sensor's noise
    walking = [flat_walker(t) for t in range(1, 5)]
    gated = FlowEstimator(steady=steady, gated=True)
    gated._dis = CountingDIS(gated._dis)
    ungated = FlowEstimator(steady=steady)
    flows = [(gated(f), ungated(f)) for f in still + walking]
    assert gated._dis.calls == len(walking)  # each still frame: no change, so no flow was computed
    for g, _ in flows[:len(still)]:
        assert g.dtype == np.float32 and g.shape == (H, W, 2) and not g.any()
    for (g, u), f, prev in zip(flows[len(still):], walking, [still[-1], *walking[:-1]], strict=True):
        np.testing.assert_array_equal(g, u * changed(prev, f, gated._reach)[..., None])  # the flow DIS gives


def test_a_gated_models_motion_band_says_so():
    cfg = OCRGANConfig(isize=(32, 48), nc=1, motion=True, gated=True)
    frames = np.stack([flat_walker(t) for t in range(4)])
    x = preprocess_sequence(frames, cfg)
    assert x[1:, 1:, :, :16].abs().max() == 0
    assert "did not change" in input_spec(cfg)["motion"]["flow"]
    assert "change" not in input_spec(OCRGANConfig(isize=(32, 48), nc=1, motion=True))["motion"]["flow"]
