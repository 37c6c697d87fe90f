import numpy as np
import pytest

from training.baselines import FLOW_HEIGHT, flow_speeds


def scene(n: int, sway: int, walker_speed: int) -> np.ndarray:
    """uint8 (n, FLOW_HEIGHT, 192): a textured ground seen by a camera that shifts `sway` px every other frame,
    one textured walker crossing it at `walker_speed` px per frame."""
    rng = np.random.default_rng(0)
    ground = np.kron(rng.integers(0, 256, (FLOW_HEIGHT // 4 + 8, 56), dtype=np.uint8), np.ones((4, 4), np.uint8))
    walker = np.kron(rng.integers(0, 256, (5, 3), dtype=np.uint8), np.ones((4, 4), np.uint8))
    frames = []
    for t in range(n):
        dx = sway * (t % 2)
        f = ground[16:16 + FLOW_HEIGHT, 16 + dx:16 + dx + 192].copy()
        x = 20 + walker_speed * t - dx  # the walker walks on the ground, which the sway moves in the frame
        f[50:70, x:x + 12] = walker
        frames.append(f)
    return np.stack(frames)


def test_steady_flow_speed_reads_the_walker_through_the_cameras_sway():
    still = flow_speeds(scene(8, 0, 1))
    assert np.array_equal(still["flow_speed"].numpy(), still["flow_speed_steady"].numpy())  # a still camera's is
    # the raw flow
    swaying = flow_speeds(scene(8, 6, 1))
    raw, steady = swaying["flow_speed"][1:].numpy(), swaying["flow_speed_steady"][1:].numpy()
    assert raw.min() > 4  # the sway moves every patch 6 px
    assert steady.max() < 2.5  # the walker at 1 px per frame, the sway gone
    assert steady == pytest.approx(still["flow_speed"][1:].numpy(), abs=1.0)


def test_flow_speed_wants_frames_of_its_height():
    with pytest.raises(ValueError, match="128 pixels high"):
        flow_speeds(np.zeros((2, 64, 96), np.uint8))
