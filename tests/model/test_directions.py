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


def test_the_moving_threshold_follows_the_footage_and_ignores_flow_noise():
    assert moving_threshold(torch.full((100,), 0.01)) == MIN_MOVING  # a still scene: noise does not move
    speeds = torch.cat([torch.zeros(900), torch.full((100,), 4.0)])
    assert moving_threshold(speeds) == pytest.approx(1.0)  # a quarter of the 99th percentile


def test_a_direction_never_seen_at_a_place_is_surprising_and_the_usual_one_is_not():
    h, w = 16, 32
    flow = uniform_flow(20, h, w, 0.0, 0.0)
    flow[:, 0, :, :16] = 1.0  # things move right in the left half; nothing moves in the right half
    prior = log_prior(direction_counts(flow, 0.5))
    assert prior.shape == (DIRECTIONS, h, w)
    assert torch.allclose(prior.exp().sum(0), torch.ones(h, w))
    right, left = uniform_flow(1, h, w, 1.0, 0.0)[None], uniform_flow(1, h, w, -1.0, 0.0)[None]
    s_right, s_left = surprise_map(right, prior, 0.5)[0, 0], surprise_map(left, prior, 0.5)[0, 0]
    assert s_right[:, :4].max() < 0.01  # the usual way at that place
    assert s_left[:, :4].min() > 5.0  # the wrong way at that place
    # where nothing moved in training every direction is equally (and moderately) surprising
    assert torch.allclose(s_right[:, -4:], torch.full((h, 4), math.log(DIRECTIONS)), atol=1e-4)
    assert torch.allclose(s_left[:, -4:], s_right[:, -4:])
    assert surprise_map(right * 0.1, prior, 0.5).abs().max() == 0  # what does not move costs nothing


def test_counts_of_chunks_add_up_to_the_counts_of_the_whole():
    g = torch.Generator().manual_seed(0)
    flow = torch.randn(12, 2, 16, 24, generator=g)
    whole = direction_counts(flow, 0.3)
    assert torch.allclose(direction_counts(flow[:5], 0.3) + direction_counts(flow[5:], 0.3), whole)


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
