import pytest
import torch

from model.augment import KINDS, forge, forge_clip


@pytest.mark.parametrize("kind", KINDS)
def test_each_forgery_alters_the_frames_its_mask_names(kind):
    g = torch.Generator().manual_seed(3)
    clip = torch.rand(16, 1, 32, 48) * 2 - 1
    out, altered = forge_clip(clip, kind, g)
    assert out.shape == clip.shape and altered.shape == (16,) and altered.any()
    changed = (out != clip).flatten(1).any(1)
    assert not (changed & ~altered).any(), "frames outside the mask must be untouched"
    if kind in ("cutpaste", "cutout", "fast"):
        assert changed[1:].all()


def test_forge_is_deterministic_given_the_generator():
    clips = torch.rand(3, 8, 1, 16, 16)
    a = forge(clips, torch.Generator().manual_seed(1))
    b = forge(clips, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[1].shape == (3, 8)


def test_unknown_forgery():
    with pytest.raises(ValueError):
        forge_clip(torch.zeros(4, 1, 8, 8), "blur", torch.Generator())
