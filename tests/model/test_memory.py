import pytest
import torch

from model import OCRGANVideo
from model.memory import coreset, nearest_distance, patch_features
from tests.model.helpers import rand_clip, tiny_cfg


def test_nearest_distance_is_the_brute_force_minimum():
    g = torch.Generator().manual_seed(0)
    bank, q = torch.randn(50, 6, generator=g), torch.randn(3, 7, 6, generator=g)
    want = torch.cdist(q.reshape(-1, 6), bank).amin(1).reshape(3, 7)
    assert torch.allclose(nearest_distance(q, bank, chunk=4), want, atol=1e-4)
    assert nearest_distance(bank[:5], bank).abs().max() < 1e-2  # what is in the memory costs (next to) nothing


def test_the_coreset_covers_rare_patterns_a_random_sample_of_its_size_would_miss():
    g = torch.Generator().manual_seed(1)
    common = torch.randn(2000, 4, generator=g) * 0.1
    rare = torch.randn(5, 4, generator=g) * 0.1 + 10.0  # a pattern seen in 5 of 2005 patches
    feats = torch.cat([common, rare])
    bank = coreset(feats, 32)
    assert bank.shape == (32, 4)
    assert nearest_distance(rare, bank).max() < 1.0
    # the k-centre bound: every feature is within the largest distance of a picked one to the others picked
    cover = nearest_distance(feats, bank).max()
    assert cover <= min(torch.cdist(bank[k:k + 1], torch.cat([bank[:k], bank[k + 1:]])).min() for k in range(32))
    assert coreset(feats[:10], 32).shape == (10, 4)  # fewer features than places: all of them


def test_patch_features_average_cells_covering_the_score_patch():
    skip = torch.arange(2 * 3 * 4 * 8 * 12, dtype=torch.float32).reshape(2, 3, 4, 8, 12)
    f = patch_features(skip, level=1, patch=8)  # level 1 cells are 4 pixels: 2x2 cells per 8-pixel patch
    assert f.shape == (2, 3, 7, 11, 4)
    assert torch.allclose(f[0, 0, 0, 0], skip[0, 0, :, :2, :2].mean(dim=(-2, -1)))
    assert patch_features(skip, level=1, patch=4).shape == (2, 3, 8, 12, 4)  # one cell per patch


def test_the_memory_cue_is_absent_until_filled_then_small_on_what_it_saw():
    cfg = tiny_cfg(isize=(32, 48), motion=True, memory_size=256, score_patch=4)
    model = OCRGANVideo(cfg).eval()
    seen, unseen = rand_clip(cfg, 2) * 0.1, rand_clip(cfg, 2)
    assert model.score_detailed(seen).mem is None  # an empty memory is no cue
    with torch.no_grad():
        model.set_memory(model(seen).features.flatten(0, -2))
    near, far = model.score_detailed(seen).mem, model.score_detailed(unseen).mem
    assert near.shape == (2, cfg.num_frames) and float(near.max()) < float(far.min())
    assert model.scales()["mem"] == pytest.approx(1.0) and model.weights()["mem"] == 0.0


def test_a_model_without_a_memory_has_no_memory_buffers():
    state = OCRGANVideo(tiny_cfg()).state_dict()
    assert "memory" not in state and "mem_scale" not in state
