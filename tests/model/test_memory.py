import pytest
import torch

from model import OCRGANVideo
from model.memory import coreset, nearest_distance, patch_features, pixel_patches
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


@pytest.mark.parametrize(("hw", "level", "patch"),
                         [((32, 48), 1, 4), ((64, 96), 1, 8), ((64, 96), 0, 8), ((16, 24), 1, 16)])
def test_grey_patches_cover_the_pixels_of_the_feature_patches_they_sit_beside(hw, level, patch):
    frames = torch.rand(2, 3, 1, *hw)
    skip = torch.rand(2, 3, 4, hw[0] >> (level + 1), hw[1] >> (level + 1))
    grey = pixel_patches(frames, level, patch)
    assert grey.shape[:4] == patch_features(skip, level, patch).shape[:4]
    side = grey.shape[-1] ** 0.5  # a square of 2^level-pixel means
    pixels = int(side) * 2 ** level
    assert torch.allclose(grey[1, 2, 0, 0].mean(), frames[1, 2, 0, :pixels, :pixels].mean(), atol=1e-6)
    r, c = grey.shape[2] - 1, grey.shape[3] - 1  # the last patch ends where the frame's covered pixels end
    step = 2 ** (level + 1)
    want = frames[0, 1, 0, r * step:r * step + pixels, c * step:c * step + pixels]
    assert torch.allclose(grey[0, 1, r, c].mean(), want.mean(), atol=1e-6)


def test_the_coreset_picks_what_textbook_greedy_k_centre_picks():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(3000, 32, generator=g)
    first = int(torch.randint(len(feats), (), generator=torch.Generator().manual_seed(0)))  # coreset's own first pick
    picked, dist = [first], (feats - feats[first]).pow(2).sum(1)
    for _ in range(99):
        picked.append(int(dist.argmax()))
        dist = torch.minimum(dist, (feats - feats[picked[-1]]).pow(2).sum(1))
    assert torch.equal(coreset(feats, 100), feats[picked])


def test_a_memory_in_parts_chooses_each_parts_coreset_on_its_own():
    g = torch.Generator().manual_seed(3)
    feats, grey = torch.randn(500, 6, generator=g), torch.randn(500, 4, generator=g) * 0.1
    bank = coreset(torch.cat([feats, grey], 1), 64, parts=(6, 4))
    assert torch.equal(bank[:, :6], coreset(feats, 64)) and torch.equal(bank[:, 6:], coreset(grey, 64))
    assert coreset(torch.cat([feats, grey], 1)[:10], 64, parts=(6, 4)).shape == (10, 10)


def test_the_grey_cue_flags_a_dark_patch_the_memorys_features_hardly_tell_apart():
    cfg = tiny_cfg(isize=(32, 48), motion=True, memory_size=256, score_patch=4, memory_grey=True)
    model = OCRGANVideo(cfg).eval()
    assert model.memory.shape == (256, model.generator.widths[model.memory_level] + 4)
    assert model.memory_parts == (model.generator.widths[model.memory_level], 4)
    seen = rand_clip(cfg, 2) * 0.1
    with torch.no_grad():
        model.set_memory(model(seen).features.flatten(0, -2))
        dark = seen.clone()
        dark[:, :, 0, 8:16, 8:16] = -1.0  # a dark square on the appearance channel only
        near, far = model.score_detailed(seen), model.score_detailed(dark)
    assert float(far.grey.min()) > 3 * float(near.grey.max())
    assert float(far.grey.min() / near.grey.max()) > 2 * float(far.mem.min() / near.mem.max())
    assert model.weights()["grey"] == 0.0 and model.scales()["grey"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs a memory"):
        tiny_cfg(memory_grey=True)
