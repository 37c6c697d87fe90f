import torch

from model.scoring import error_map, feature_distance, flow_error_map, local_error_map, pooled_error


def test_error_map_averages_channels():
    x = torch.zeros(1, 1, 3, 2, 2)
    fake = torch.zeros(1, 1, 3, 2, 2)
    fake[0, 0, 0, 0, 0] = 3.0
    e = error_map(x, fake)
    assert e.shape == (1, 1, 2, 2) and e[0, 0, 0, 0] == 3.0 and e.sum() == 3.0


def test_pooled_error_keeps_a_small_anomaly_visible():
    err = torch.zeros(1, 1, 32, 32)
    err[0, 0, :4, :4] = 1.0  # a 4x4 anomaly
    assert pooled_error(err, 0).item() == 16 / 1024
    assert pooled_error(err, 4).item() == 1.0  # the 4x4 patch at the corner
    assert pooled_error(err, 8).item() == 16 / 64
    assert pooled_error(err, 64).item() == 16 / 1024  # the patch is clamped to the frame


def test_local_error_map_is_the_patch_mean_around_each_pixel():
    err = torch.zeros(1, 1, 9, 9)
    err[0, 0, 4, 4] = 9.0
    m = local_error_map(err, 3)
    assert m.shape == err.shape
    assert m[0, 0, 3:6, 3:6].eq(1.0).all() and m.sum() == 9.0
    assert torch.equal(local_error_map(err, 1), err)


def test_feature_distance():
    a = torch.zeros(1, 2, 4)
    b = torch.ones(1, 2, 4) * 2
    assert torch.equal(feature_distance(a, b), torch.full((1, 2), 4.0))


def test_flow_error_is_the_length_of_the_deviation_in_pixels():
    flow = torch.zeros(1, 1, 2, 2, 2)
    flow[0, 0, 0, 0, 0], flow[0, 0, 1, 0, 0] = 3.0, 4.0  # (3, 4) pixels at one position
    e = flow_error_map(flow, torch.zeros_like(flow))
    assert e.shape == (1, 1, 2, 2) and e[0, 0, 0, 0] == 5.0 and e.sum() == 5.0
