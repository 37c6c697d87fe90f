import torch

from model.discriminator import FrameDiscriminator
from tests.model.helpers import tiny_cfg


def test_outputs_and_shapes():
    cfg = tiny_cfg(isize=(64, 96), nz=20)
    d = FrameDiscriminator(cfg).eval()
    frames = torch.rand(3, cfg.num_frames, 1, 64, 96)
    logits, feat, attended = d(frames)
    assert logits.shape == (3, cfg.num_frames)
    assert feat.shape == attended.shape == (3, cfg.num_frames, 20)


def test_per_frame_features_do_not_depend_on_other_frames():
    cfg = tiny_cfg()
    d = FrameDiscriminator(cfg).eval()
    frames = torch.rand(1, cfg.num_frames, 1, 32, 32)
    other = frames.clone()
    other[:, 1:] = torch.rand_like(other[:, 1:])
    with torch.no_grad():
        assert torch.allclose(d.frame_features(frames)[:, 0], d.frame_features(other)[:, 0], atol=1e-6)
        # the temporal attention over features mixes frames (causally)
        _, _, a1 = d(frames)
        _, _, a2 = d(other)
    assert torch.allclose(a1[:, 0], a2[:, 0], atol=1e-5) and not torch.allclose(a1[:, 3], a2[:, 3])


def test_pyramid_ends_at_4_pixels_for_the_seed_size():
    d = FrameDiscriminator(tiny_cfg(isize=64, ndf=64, nz=100, nc=3))
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512]
    assert d.to_feature.kernel_size == (4, 4) and d.to_feature.out_channels == 100
