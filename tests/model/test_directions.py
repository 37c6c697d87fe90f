import math

import pytest
import torch

from model import OCRGANVideo
from model.directions import (
    DIRECTIONS,
    MIN_MOVING,
    direction_bins,
    direction_counts,
    log_prior,
    motion_classes,
    motion_patch_count,
    motion_patches,
    motion_width,
    moving_threshold,
    surprise_map,
)
from tests.model.helpers import tiny_cfg


def uniform_flow(n: int, h: int, w: int, dx: float, dy: float) -> torch.Tensor:
    f = torch.zeros(n, 2, h, w)
    f[:, 0], f[:, 1] = dx, dy
    return f


@pytest.mark.parametrize(("dx", "dy", "bin_"), [(1, 0, 0), (0, -1, 2), (-1, 0, 4), (0, 1, 6), (1, -1, 1)])
def test_direction_bins_count_counter_clockwise_from_right_with_image_y_down(dx, dy, bin_):
    assert direction_bins(uniform_flow(1, 2, 2, dx, dy)).unique().tolist() == [bin_]


def test_direction_bins_are_the_angle_rounded_to_the_nearest_bin():
    flow = torch.randn(16, 2, 32, 48, generator=torch.Generator().manual_seed(0)) * 3
    turns = torch.atan2(-flow[:, 1], flow[:, 0]) / (2 * math.pi) * DIRECTIONS
    clear = ((turns - turns.floor()) - 0.5).abs() > 1e-4  # not on the edge between two bins
    expected = turns.round().long() % DIRECTIONS
    assert torch.equal(direction_bins(flow)[clear], expected[clear])
    assert clear.float().mean() > 0.99
    assert direction_bins(torch.zeros(1, 2, 2, 2)).unique().tolist() == [0]  # no motion: bin 0, as the angle 0


def test_speed_classes_are_octaves_above_the_moving_threshold_within_each_direction():
    speeds = [0.6, 1.2, 2.5, 5.0, 100.0]
    flow = torch.stack([uniform_flow(1, 1, 1, v, 0.0) for v in speeds])[:, 0]  # (5, 2, 1, 1) moving right
    assert motion_classes(flow, 0.5, 4, 1).flatten().tolist() == [0, 1, 2, 3, 3]
    left = motion_classes(-flow, 0.5, 4, 1).flatten().tolist()
    assert left == [4 * 4 + c for c in (0, 1, 2, 3, 3)]  # direction bin 4, the same speed classes
    assert motion_classes(flow, 0.5, 1, 1).flatten().tolist() == [0] * 5  # one class: direction alone


def test_the_moving_threshold_follows_the_footage_and_ignores_flow_noise():
    assert moving_threshold(torch.full((100,), 0.01)) == MIN_MOVING  # a still scene: noise does not move
    speeds = torch.cat([torch.zeros(900), torch.full((100,), 4.0)])
    assert moving_threshold(speeds) == pytest.approx(1.0)  # a quarter of the 99th percentile
    # with speed classes, everything above the still background's noise moves
    street = torch.cat([torch.full((600,), 0.05), torch.full((300,), 0.5), torch.full((100,), 4.0)])
    assert moving_threshold(street, 4) == pytest.approx(0.2)
    assert moving_threshold(street) == pytest.approx(1.0)  # by direction alone the walkers at 0.5 would not count


def test_a_direction_never_seen_at_a_place_is_surprising_and_the_usual_one_is_not():
    h, w = 16, 32
    flow = uniform_flow(20, h, w, 0.0, 0.0)
    flow[:, 0, :, :16] = 1.0  # things move right in the left half; nothing moves in the right half
    counts = direction_counts(flow, 0.5)
    assert counts.shape == (DIRECTIONS + 1, h, w)  # the motion classes, then standing still
    assert torch.allclose(counts.sum(0)[:, :4], counts[0, :, :4])  # the left edge's cells saw only things moving right
    prior = log_prior(counts)
    assert prior.shape == (DIRECTIONS, h, w)
    moving = prior.exp().sum(0)  # the probability of moving at all at each place
    assert moving[:, :4].min() > 0.95 and moving[:, -4:].max() < 0.01
    right, left = uniform_flow(1, h, w, 1.0, 0.0)[None], uniform_flow(1, h, w, -1.0, 0.0)[None]
    s_right, s_left = surprise_map(right, prior, 0.5)[0, 0], surprise_map(left, prior, 0.5)[0, 0]
    assert s_right[:, :4].max() < 0.05  # the usual way at that place
    assert s_left[:, :4].min() > 5.0  # the wrong way at that place
    # where nothing moved in training every direction is equally surprising, and as surprising as a direction never
    # seen where things move: someone crossing where nobody goes, at whatever pace
    assert torch.allclose(s_left[:, -4:], s_right[:, -4:])
    assert s_right[:, -4:].min() > 5.0
    assert float(s_right[:, -4:].min()) == pytest.approx(float(s_left[:, :4].min()), rel=0.05)
    assert surprise_map(right * 0.1, prior, 0.5).abs().max() == 0  # what does not move costs nothing


def test_moving_where_things_seldom_move_is_more_surprising_than_where_they_often_do():
    h, w = 16, 32
    flow = uniform_flow(40, h, w, 0.0, 0.0)
    flow[:, 0, :, :16] = 1.0  # the left half moves right in every frame
    flow[::10, 0, :, 16:] = 1.0  # the right half in one frame of ten, the same way
    prior = log_prior(direction_counts(flow, 0.5))
    s = surprise_map(uniform_flow(1, h, w, 1.0, 0.0)[None], prior, 0.5)[0, 0]
    assert s[:, :4].max() < 0.05
    assert float(s[:, -4:].min()) == pytest.approx(math.log(10), abs=0.1)  # a tenth as often: log 10 more surprising


ROAD, PAVEMENT = slice(24, 40), slice(40, 56)  # rows of an 80-row street; the rest stands still
PURE_ROAD, PURE_PAVEMENT = slice(24, 32), slice(48, 56)  # rows whose cells and their neighbours see one of them only


def street(n: int, w: int, road: float = 8.0, pavement: float = 1.0) -> torch.Tensor:
    """Flow of a street 80 rows high: on the road things pass right at `road` pixels a frame, on the pavement below it
    walkers go right at `pavement`."""
    flow = uniform_flow(n, 80, w, 0.0, 0.0)
    flow[:, 0, ROAD], flow[:, 0, PAVEMENT] = road, pavement
    return flow


def test_with_speed_classes_a_speed_never_seen_at_a_place_is_surprising_though_seen_elsewhere():
    h, w = 80, 32
    normal = street(20, w)
    fast, slow = uniform_flow(1, h, w, 8.0, 0.0)[None], uniform_flow(1, h, w, 1.0, 0.0)[None]
    road, pavement = (PURE_ROAD, slice(None)), (PURE_PAVEMENT, slice(None))
    joint = log_prior(direction_counts(normal, 0.5, 4))
    assert joint.shape == (DIRECTIONS * 4, h, w)
    s_fast, s_slow = surprise_map(fast, joint, 0.5)[0, 0], surprise_map(slow, joint, 0.5)[0, 0]
    # each at its usual speed: a third of what the rows around them show stands still
    assert s_fast[road].max() < 0.5 and s_slow[pavement].max() < 0.5
    assert s_fast[pavement].min() > 5.0  # a cyclist at the cars' speed on the pavement
    assert s_slow[road].min() > 5.0  # someone walking along the road
    # by direction alone both move the usual way
    alone = log_prior(direction_counts(normal, 0.5))
    assert surprise_map(fast, alone, 0.5)[0, 0][pavement].max() < 0.5
    assert surprise_map(slow, alone, 0.5)[0, 0][road].max() < 0.5


def test_counts_of_chunks_add_up_to_the_counts_of_the_whole():
    g = torch.Generator().manual_seed(0)
    flow = torch.randn(12, 2, 16, 24, generator=g)
    for speeds in (1, 3):
        whole = direction_counts(flow, 0.3, speeds)
        assert torch.allclose(direction_counts(flow[:5], 0.3, speeds) + direction_counts(flow[5:], 0.3, speeds), whole)


def test_the_model_learns_its_prior_and_scores_the_direction_cue():
    cfg = tiny_cfg(isize=(32, 48), motion=True)
    model = OCRGANVideo(cfg).eval()
    h, w = cfg.hw
    model.set_direction_prior(uniform_flow(40, h, w, 1.0, 0.0))
    assert float(model.moving_threshold) == pytest.approx(0.25)

    def dir_cue(dx: float) -> torch.Tensor:
        clip = torch.zeros(1, cfg.num_frames, cfg.in_channels, h, w)
        clip[:, :, cfg.nc] = dx  # the motion band's x component
        return model.score_detailed(clip).dir

    assert dir_cue(1.0).max() < 0.01 < dir_cue(-1.0).min()
    assert "dir" in model.scales() and model.weights()["dir"] == 0.0  # left out unless selection weighs it


def test_the_model_with_speed_classes_flags_a_cyclist_on_the_pavement_where_the_speed_cue_cannot():
    cfg = tiny_cfg(isize=(80, 32), motion=True, speed_classes=6)
    model = OCRGANVideo(cfg).eval()
    model.set_direction_prior(street(40, 32))
    assert model.direction_prior.shape == (DIRECTIONS * 6, 80, 32)
    assert float(model.moving_threshold) == pytest.approx(0.1)  # walkers at 1 pixel a frame count as moving

    def cues(pavement: float):
        clip = torch.zeros(1, cfg.num_frames, cfg.in_channels, *cfg.hw)
        clip[:, :, cfg.nc] = street(cfg.num_frames, 32, pavement=pavement)[:, 0]  # the motion band's x component
        return model.score_detailed(clip)

    normal, cyclist = cues(1.0), cues(6.0)
    assert cyclist.dir.min() > 2 * normal.dir.max()
    assert torch.allclose(cyclist.speed, normal.speed)  # the fastest patch is the road's either way


def test_a_checkpoint_config_from_before_speed_classes_reads_as_direction_alone():
    d = tiny_cfg(motion=True).to_dict()
    del d["speed_classes"]
    cfg = type(tiny_cfg()).from_dict(d)
    assert cfg.speed_classes == 1
    assert OCRGANVideo(cfg).direction_prior.shape[0] == DIRECTIONS
    with pytest.raises(ValueError, match="speed_classes"):
        tiny_cfg(speed_classes=0)


def test_motion_patches_hold_the_share_of_each_motion_class_and_the_place():
    flow = uniform_flow(2, 16, 32, 0.0, 0.0)
    flow[:, 0, :, :16] = 1.0  # the left half moves right
    p = motion_patches(flow, 0.5, 1, 8)  # patches of 8 pixels, stride 4
    assert p.shape == (2, 3, 7, motion_width(1))
    assert torch.allclose(p[0, :, 0, 0], torch.ones(3)) and p[0, :, -1, :DIRECTIONS].abs().max() == 0
    assert torch.allclose(p[0, 0, 3, 0], torch.tensor(0.5))  # a patch half over the moving half
    assert p[0, 0, 0, -2:].tolist() == [0.0, 0.0] and p[0, -1, -1, -2:].tolist() == [1.0, 1.0]  # row, column
    for h, w, patch in ((16, 32, 8), (64, 96, 8), (80, 32, 16), (5, 7, 8), (9, 9, 1)):
        described = motion_patches(torch.zeros(1, 2, h, w), 0.5, 1, patch)
        assert motion_patch_count(h, w, patch) == described[0, ..., 0].numel()


def _cue(model: OCRGANVideo, flow: torch.Tensor) -> torch.Tensor:
    clip = torch.zeros(1, model.cfg.num_frames, model.cfg.in_channels, *model.cfg.hw)
    clip[0, :, model.cfg.nc:] = flow
    return model.score_detailed(clip).dir


def test_the_motion_memory_flags_the_wrong_way_the_wrong_place_and_the_wrong_speed():
    cfg = tiny_cfg(isize=(80, 32), motion=True, speed_classes=6, direction_memory=256, score_patch=8)
    model = OCRGANVideo(cfg).eval()
    model.set_direction_prior(street(40, 32))
    assert model.direction_bank.shape == (256, motion_width(6)) and model.direction_bank.abs().sum() > 0
    n = cfg.num_frames
    normal = _cue(model, street(n, 32))
    assert normal.max() < 1e-3  # what the memory holds
    wrong_way = _cue(model, street(n, 32, pavement=-1.0))
    cyclist = _cue(model, street(n, 32, pavement=6.0))  # the cars' speed on the pavement
    lawn = street(n, 32)
    lawn[:, 0, 64:72] = 1.0  # walkers where nothing moves
    for other in (wrong_way, cyclist, _cue(model, lawn)):
        assert other.min() > 0.15  # the lawn is 0.2 from the pavement's walkers: its place alone
    assert torch.equal(_cue(model, street(n, 32) * 0.01), _cue(model, uniform_flow(n, 80, 32, 0.0, 0.0)))


def test_the_motion_memory_is_saved_with_the_checkpoint(tmp_path):
    from model import load_checkpoint, save_checkpoint

    cfg = tiny_cfg(isize=(80, 32), motion=True, direction_memory=16, score_patch=8)
    model = OCRGANVideo(cfg).eval()
    model.set_direction_prior(street(10, 32))
    save_checkpoint(model, tmp_path / "m.safetensors")
    loaded, _ = load_checkpoint(tmp_path / "m.safetensors")
    assert torch.equal(loaded.direction_bank, model.direction_bank)
    assert torch.allclose(_cue(loaded, street(8, 32, pavement=-1.0)), _cue(model, street(8, 32, pavement=-1.0)))
    with pytest.raises(ValueError, match="direction_memory"):
        tiny_cfg(direction_memory=-1)
