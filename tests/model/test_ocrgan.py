import torch

from model import OCRGANVideo
from tests.model.helpers import rand_clip, tiny_cfg


def test_eval_scores_do_not_depend_on_the_rest_of_the_batch():
    model = OCRGANVideo(tiny_cfg()).eval()
    clip = rand_clip(model.cfg, 1)
    alone = model.score(clip)
    batch = torch.cat([rand_clip(model.cfg, 2), clip, rand_clip(model.cfg, 1)])
    assert torch.allclose(model.score(batch)[2:3], alone, atol=1e-5)


def test_score_is_the_larger_of_the_scaled_error_map_and_feature_distance():
    model = OCRGANVideo(tiny_cfg(w_score_app=0.8, w_score_feat=0.5)).eval()
    model.app_scale.fill_(2.0)
    model.feat_scale.fill_(5.0)
    s = model.score_detailed(rand_clip(model.cfg), heatmap=True)
    assert torch.allclose(s.rec, 0.8 * s.app / 2.0)  # without the motion band the map is the appearance error's
    assert torch.allclose(s.raw, torch.maximum(s.rec, 0.5 * s.feat / 5.0))
    assert s.heatmap is not None and (s.heatmap >= 0).all()


def test_the_error_map_takes_the_larger_cue_at_each_pixel():
    cfg = tiny_cfg(motion=True, w_score_app=0.5)
    model = OCRGANVideo(cfg).eval()
    model.app_scale.fill_(0.1)
    model.motion_scale.fill_(2.0)
    app, motion = torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8)
    assert torch.equal(model.combined_map(app, motion), torch.maximum(0.5 * app / 0.1, motion / 2.0))


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
