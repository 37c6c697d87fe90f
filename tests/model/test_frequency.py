import torch

from model.frequency import OmniFrequencySplit, binomial_kernel


def test_kernel_is_the_normalised_5x5_binomial():
    k = binomial_kernel()
    assert k.shape == (5, 5)
    assert torch.isclose(k.sum(), torch.tensor(1.0))
    assert torch.allclose(k[2], torch.tensor([6.0, 24, 36, 24, 6]) / 256)


def test_split_is_exact_for_any_size_and_leading_dims():
    split = OmniFrequencySplit()
    for shape in [(2, 16, 3, 64, 64), (1, 4, 1, 120, 180), (3, 1, 15, 21)]:
        x = torch.rand(shape) * 2 - 1
        lap, res = split(x)
        assert lap.shape == res.shape == x.shape
        assert (lap + res - x).abs().max() < 1e-6  # float rounding only, no uint8 round trip


def test_constant_image_has_no_high_frequency():
    lap, res = OmniFrequencySplit()(torch.full((1, 1, 33, 40), 0.3))
    assert torch.allclose(res, torch.full_like(res, 0.3), atol=1e-6)
    assert lap.abs().max() < 1e-6


def test_laplacian_holds_the_edges_and_residual_the_smooth_part():
    x = torch.zeros(1, 1, 32, 32)
    x[..., 16:] = 1.0  # a step edge
    lap, res = OmniFrequencySplit()(x)
    assert lap[..., 12:20].abs().sum() > 0.9 * lap.abs().sum()  # high frequencies sit at the edge
    assert res[..., 0].abs().max() < 1e-6 and (res[..., -1] - 1).abs().max() < 1e-6


def test_negative_values_are_not_clipped():
    x = -torch.rand(1, 3, 16, 16)
    lap, res = OmniFrequencySplit()(x)
    assert res.min() < 0 and (lap + res - x).abs().max() < 1e-6
