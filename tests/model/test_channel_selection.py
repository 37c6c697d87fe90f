import torch

from model import OCRGANVideo
from model.channel_selection import ChannelSelection
from tests.model.helpers import rand_clip, tiny_cfg


def test_weights_are_a_per_channel_softmax_across_the_two_streams():
    cs = ChannelSelection(48)
    a, b = torch.randn(5, 48, 7, 9), torch.randn(5, 48, 7, 9)
    w = cs.weights(a, b)
    assert w.shape == (5, 2, 48)
    assert torch.allclose(w.sum(1), torch.ones(5, 48))
    ya, yb = cs(a, b)
    assert torch.allclose(ya, a * w[:, 0, :, None, None]) and torch.allclose(yb, b * w[:, 1, :, None, None])


def test_reduction_dimension_is_max_of_c_over_r_and_32():
    assert ChannelSelection(16).squeeze[0].out_features == 32
    assert ChannelSelection(256, reduction=2).squeeze[0].out_features == 128


def test_weights_are_saved_and_trained():
    model = OCRGANVideo(tiny_cfg())
    keys = [k for k in model.state_dict() if ".select." in k]
    assert keys, "channel selection must be registered submodules"
    before = {k: model.state_dict()[k].clone() for k in keys}
    opt = torch.optim.SGD(model.generator.parameters(), lr=0.1)
    gen = model(rand_clip(model.cfg))
    (gen.fake - gen.target).abs().mean().backward()
    opt.step()
    changed = [k for k in keys if not torch.equal(before[k], model.state_dict()[k])]
    assert len(changed) == len(keys)


def test_selection_depends_on_the_input():
    cs = ChannelSelection(8)
    w1 = cs.weights(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4))
    w2 = cs.weights(torch.randn(1, 8, 4, 4) * 5, torch.randn(1, 8, 4, 4))
    assert not torch.allclose(w1, w2)
