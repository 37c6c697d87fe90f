import numpy as np
import pytest
import torch

from model.motion import sequence_flow
from testkit.synthetic import moving_shapes
from training.anomalies import DIRECTIONS, KINDS, MotionPrior, forge_window


@pytest.fixture(scope="module")
def scene():
    """Walkers moving right at about 1 pixel per frame, the prior learned from their flow."""
    frames, _ = moving_shapes(40, 64, 96, seed=1)
    flow = torch.from_numpy(sequence_flow(frames)).permute(0, 3, 1, 2)
    return frames, MotionPrior.from_flow(flow, cell=16)


def test_the_prior_knows_where_and_which_way_things_move(scene):
    _, prior = scene
    assert 0.5 < prior.speed < 2.0  # the walkers' 0.8-1.5 pixels per frame
    moving_cells = prior.directions[prior.moving > 0.2]
    assert len(moving_cells) and (moving_cells.argmax(-1) == 0).mean() > 0.8  # bin 0: to the right
    g = torch.Generator().manual_seed(0)
    cy, cx = np.unravel_index(prior.moving.argmax(), prior.moving.shape)
    assert prior.likely_direction(cy, cx, g) == 0.0
    rare = prior.unlikely_direction(cy, cx, g)
    assert rare != 0.0 and prior.directions[cy, cx, round(rare / (2 * np.pi) * DIRECTIONS)] < 0.05


def _moved(frames: np.ndarray, forged: np.ndarray) -> np.ndarray:
    """Per frame, the centroid (y, x) of the pixels the forgery changed."""
    out = []
    for a, b in zip(frames, forged, strict=True):
        ys, xs = np.nonzero(a != b)
        out.append((ys.mean(), xs.mean()) if len(ys) else (np.nan, np.nan))
    return np.array(out)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_alters_the_published_frames(scene, kind):
    frames, prior = scene
    window = frames[:17]
    out = forge_window(window, kind, prior, frames[20:37], published=4, g=torch.Generator().manual_seed(3))
    assert out.shape == window.shape and out.dtype == np.uint8
    changed = (out != window).reshape(len(window), -1).any(1)
    assert changed[-4:].all(), "the anomaly must be visible in every published frame"
    assert not changed[:10].any(), "it starts just before the published frames"


def test_too_fast_and_the_wrong_way(scene):
    frames, prior = scene
    g = torch.Generator().manual_seed(5)
    fast = _moved(frames[:17], forge_window(frames[:17], "fast", prior, frames[20:37], 8, g))[-8:]
    step = np.nanmedian(np.linalg.norm(np.diff(fast, axis=0), axis=1))
    assert step > 1.4 * prior.speed  # faster than anything normal (1.5-3 times the speed at its place)
    wrong = _moved(frames[:17], forge_window(frames[:17], "wrong_way", prior, frames[20:37], 8, g))[-8:]
    d = np.diff(wrong, axis=0).sum(0)
    assert not (d[1] > 0 and abs(d[0]) < 0.2 * d[1]), "it must not move the normal way (right)"


def test_a_still_foreign_patch_does_not_move(scene):
    frames, prior = scene
    out = forge_window(frames[:17], "still", prior, frames[20:37], 8, torch.Generator().manual_seed(2))
    diff = out.astype(int) - frames[:17]
    region = diff[-1] != 0
    assert region.any() and (out[-8:, region] == out[-1, region]).all()  # the same pixels in every frame


def test_unknown_kind(scene):
    frames, prior = scene
    with pytest.raises(ValueError, match="unknown synthetic anomaly"):
        forge_window(frames[:5], "blur", prior, frames[0], 2, torch.Generator())


def test_too_fast_is_measured_against_what_moves_at_that_place():
    """A street in the left half of the view: traffic passes right at 6 pixels a frame (rows 16-31), walkers at 1
    below it (rows 32-47). A fast object forged on the pavement moves at 1.5-3 times the walkers' speed, slower than
    the traffic: fast for its place."""
    flow = torch.zeros(40, 2, 64, 96)
    flow[:, 0, 16:32, :48], flow[:, 0, 32:48, :48] = 6.0, 1.0
    prior = MotionPrior.from_flow(flow, cell=16)
    assert prior.speeds[1, :3] == pytest.approx(6.0) and prior.speeds[2, :3] == pytest.approx(1.0)
    assert prior.speed == pytest.approx(6.0)  # the frame's one speed is the traffic's
    frames, _ = moving_shapes(40, 64, 96, seed=1)
    prior.moving[:] = 0.0
    prior.moving[2, 1] = 1.0  # the forgery goes to a cell of the pavement
    for seed in range(4):
        forged = forge_window(frames[:17], "fast", prior, frames[20:37], 8, torch.Generator().manual_seed(seed))
        moved = _moved(frames[:17], forged)[-8:]
        step = np.nanmedian(np.linalg.norm(np.diff(moved, axis=0), axis=1))
        assert 1.3 < step < 3.2, step


def test_a_places_speed_is_that_of_the_bodies_moving_there_not_of_their_slow_edges():
    """Walkers' bodies move at 1 pixel a frame, their edges and limbs at a fifth of it, three slow pixels for each
    fast one (as DIS reads walkers): the place's speed is the bodies', so a forgery 'too fast' for it outpaces a
    walker (their mean, 0.4, would put it at 0.6-1.2: a walker's pace)."""
    flow = torch.zeros(40, 2, 64, 96)
    flow[:, 0, 16:32, :48] = 0.2
    flow[:, 0, 16:32, :48:4] = 1.0
    prior = MotionPrior.from_flow(flow, cell=16)
    assert prior.speeds[1, :3] == pytest.approx(1.0)


def test_a_misplaced_object_starts_where_things_seldom_move_at_a_normal_pace():
    """Things move in the top half of the view only: a misplaced object is forged in the bottom half, moving no
    faster than what moves normally."""
    flow = torch.zeros(40, 2, 64, 96)
    flow[:, 0, :32] = 1.0
    prior = MotionPrior.from_flow(flow, cell=16)
    assert prior.moving[:2].min() > 0.9 and prior.moving[2:].max() == 0.0
    frames, _ = moving_shapes(40, 64, 96, seed=1)
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        assert prior.pick_quiet_cell(g)[0] >= 2
        forged = forge_window(frames[:17], "misplaced", prior, frames[20:37], 8, torch.Generator().manual_seed(seed))
        moved = _moved(frames[:17], forged)[-8:]
        assert moved[0, 0] >= 24  # its first published frame: in the bottom half (a few pixels of its way in)
        step = np.nanmedian(np.linalg.norm(np.diff(moved, axis=0), axis=1))
        assert step < 1.2 * prior.speed
