import torch

from model import OCRGANVideo
from tests.model.helpers import rand_clip, tiny_cfg


def test_eval_scores_do_not_depend_on_the_rest_of_the_batch():
    model = OCRGANVideo(tiny_cfg()).eval()
    clip = rand_clip(model.cfg, 1)
    alone = model.score(clip)
    batch = torch.cat([rand_clip(model.cfg, 2), clip, rand_clip(model.cfg, 1)])
    assert torch.allclose(model.score(batch)[2:3], alone, atol=1e-5)


def test_score_combines_scaled_reconstruction_and_feature_distance():
    model = OCRGANVideo(tiny_cfg(w_score_rec=0.9, w_score_feat=0.1)).eval()
    model.rec_scale.fill_(2.0)
    model.feat_scale.fill_(5.0)
    s = model.score_detailed(rand_clip(model.cfg), heatmap=True)
    assert torch.allclose(s.raw, 0.9 * s.rec / 2.0 + 0.1 * s.feat / 5.0)
    assert s.heatmap is not None and (s.heatmap >= 0).all()


def test_reconstruction_targets_the_clip_itself():
    model = OCRGANVideo(tiny_cfg(objective="reconstruct")).eval()
    clip = rand_clip(model.cfg, 1)
    gen = model(clip)
    assert torch.equal(gen.target, clip)


def test_normalisation_uses_the_stored_statistics():
    model = OCRGANVideo(tiny_cfg())
    model.set_score_statistics(mean=2.0, std=0.5, threshold=3.0)
    assert torch.allclose(model.normalise(torch.tensor([2.0, 3.5])), torch.tensor([0.0, 3.0]))
    assert {"score_mean", "score_std", "threshold", "rec_scale", "feat_scale"} <= set(model.state_dict())


def test_attention_maps_are_collected_in_training():
    model = OCRGANVideo(tiny_cfg()).train()
    model(rand_clip(model.cfg))
    maps = model.attention_maps()
    assert maps and all(m.shape[-1] == model.cfg.num_frames for m in maps)
