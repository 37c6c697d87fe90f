import math

import torch

from model import losses as L


def bce(p, y):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_adversarial_losses_by_hand():
    # logits 0 -> p = 0.5; logit log(3) -> p = 0.75
    real = torch.full((1, 2), math.log(3))
    fake = torch.zeros(1, 2)
    aug = torch.tensor([[0.0, 100.0]])
    mask = torch.tensor([[True, False]])
    expected = bce(0.75, 1) + bce(0.5, 0) + bce(0.5, 0)
    assert math.isclose(L.adversarial_d(real, fake, aug, mask).item(), expected, rel_tol=1e-5)
    assert math.isclose(L.adversarial_g(real).item(), bce(0.75, 1), rel_tol=1e-5)
    assert math.isclose(L.adversarial_d(real, fake).item(), bce(0.75, 1) + bce(0.5, 0), rel_tol=1e-5)


def test_reconstruction_and_feature_matching_by_hand():
    a = torch.tensor([0.0, 1.0, 2.0, 3.0])
    b = torch.tensor([1.0, 1.0, 0.0, 3.0])
    assert L.reconstruction(a, b).item() == (1 + 0 + 2 + 0) / 4
    assert L.feature_matching(a, b).item() == (1 + 0 + 4 + 0) / 4


def test_temporal_consistency_by_hand():
    real = torch.tensor([0.0, 1.0, 2.0]).view(1, 3, 1)  # differences 1, 1
    fake = torch.tensor([0.0, 3.0, 3.0]).view(1, 3, 1)  # differences 3, 0
    assert math.isclose(L.temporal_consistency(real, fake).item(), ((3 - 1) ** 2 + (0 - 1) ** 2) / 2)
    f_real = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # cos: 1, 0
    f_fake = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])  # cos: 0, 1
    value = L.temporal_consistency(real, fake, f_real, f_fake).item()
    assert math.isclose(value, 2.5 + (1 + 1) / 2, rel_tol=1e-6)


def test_sobel_and_motion_by_hand():
    ramp = torch.arange(5.0).repeat(5, 1)[None, None]  # x-gradient 1 per pixel
    gx, gy = L.sobel(ramp)
    assert torch.allclose(gx[..., 1:-1, 1:-1], torch.full((3, 3), 8.0))  # Sobel gain 8 per unit slope
    assert gy.abs().max() == 0
    real = torch.zeros(1, 2, 1, 5, 5)
    fake = torch.zeros(1, 2, 1, 5, 5)
    fake[:, 1, 0] = ramp[0, 0]  # fake difference is the ramp, real difference is zero
    gx_ramp, _ = L.sobel(ramp)
    assert math.isclose(L.temporal_motion(real, fake).item(), 0.5 * gx_ramp.abs().mean().item(), rel_tol=1e-6)


def test_attention_regularisation_by_hand():
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert L.attention_regularisation([one_hot]).item() == 0.0
    uniform = torch.full((1, 4), 0.25)  # entropy log4 / log4 = 1, gini 1 - 4/16 = 0.75
    assert math.isclose(L.attention_regularisation([uniform]).item(), 1.75, rel_tol=1e-6)
    causal = torch.tensor([[1.0, 0.0], [0.5, 0.5]])  # rows: 0 ; 1 + 0.5
    assert math.isclose(L.attention_regularisation([causal]).item(), 0.75, rel_tol=1e-6)
    assert L.attention_regularisation([]).item() == 0.0
