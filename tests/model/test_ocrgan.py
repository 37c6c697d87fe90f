import pytest
import torch

from model import OCRGANVideo
from model.ocrgan import ErrorMaps
from model.scoring import local_error_map
from tests.model.helpers import rand_clip, tiny_cfg


def test_eval_scores_do_not_depend_on_the_rest_of_the_batch():
    model = OCRGANVideo(tiny_cfg()).eval()
    clip = rand_clip(model.cfg, 1)
    alone = model.score(clip)
    batch = torch.cat([rand_clip(model.cfg, 2), clip, rand_clip(model.cfg, 1)])
    assert torch.allclose(model.score(batch)[2:3], alone, atol=1e-5)


def test_score_is_the_largest_weighted_cue_in_its_units():
    model = OCRGANVideo(tiny_cfg(w_score_app=0.8, w_score_feat=0.5)).eval()
    model.app_scale.fill_(2.0)
    model.feat_scale.fill_(5.0)
    s = model.score_detailed(rand_clip(model.cfg), heatmap=True)
    assert s.motion is None and s.speed is None  # without the motion band
    assert torch.allclose(s.raw, torch.maximum(0.8 * s.app / 2.0, 0.5 * s.feat / 5.0))
    assert torch.allclose(s.rec, 0.8 * s.app / 2.0)  # the heatmap's peak: the appearance map's
    assert model.heat_cues == ("app",) and s.maps.shape == (*s.raw.shape, 1, *model.cfg.hw)
    assert (model.heatmap(s.maps) >= 0).all()


def test_a_scene_calibration_replaces_the_units():
    cfg = tiny_cfg(motion=True, w_score_app=0.5, w_score_speed=1.0, w_score_feat=0.25)
    model = OCRGANVideo(cfg).eval()
    cues = {"app": torch.tensor([0.2, 0.1]), "motion": torch.tensor([1.0, 3.0]), "speed": torch.tensor([2.0, 0.5]),
            "feat": torch.tensor([4.0, 4.0])}
    assert torch.allclose(model.combine(cues), torch.tensor([2.0, 3.0]))  # the checkpoint's units are 1
    scene = {"app": 0.01, "motion": 2.0, "speed": 4.0, "feat": 1.0}
    assert torch.allclose(model.combine(cues, scene), torch.tensor([10.0, 5.0]))


def test_the_heatmap_takes_the_largest_cue_at_each_pixel():
    cfg = tiny_cfg(motion=True, w_score_app=0.5, w_score_speed=0.25)
    model = OCRGANVideo(cfg).eval()
    model.app_scale.fill_(0.1)
    model.motion_scale.fill_(2.0)
    model.speed_scale.fill_(0.5)
    app, motion, speed = torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8)
    got = model.combined_map(ErrorMaps(app, motion, speed))
    assert torch.equal(got, torch.maximum(torch.maximum(0.5 * app / 0.1, motion / 2.0), 0.25 * speed / 0.5))
    no_speed = model.weights() | {"speed": 0.0}
    assert torch.equal(model.combined_map(ErrorMaps(app, motion, speed), no_speed),
                       torch.maximum(0.5 * app / 0.1, motion / 2.0))


def test_the_heatmap_draws_each_cues_map_in_the_units_given_and_leaves_out_a_cue_without_one():
    """The maps come out unscaled (Scored.maps), one per heat cue; the heatmap weighs them in the checkpoint's units
    or a scene's, and a cue a scene's units leave out (a memory unlike the scene) is left out of the picture too."""
    cfg = tiny_cfg(motion=True, memory_size=16, w_score_app=0.5, w_score_motion=1.0, w_score_mem=1.0)
    model = OCRGANVideo(cfg).eval()
    clip = rand_clip(cfg, 1)
    with torch.no_grad():
        model.set_memory(model(clip).features.flatten(0, -2)[:16] + 1.0)  # every patch some way from it
    model.app_scale.fill_(0.1)
    model.mem_scale.fill_(0.01)
    assert model.heat_cues == ("app", "motion", "mem")  # speed and direction of weight 0: not shown
    s = model.score_detailed(clip, positions=slice(-2, None), heatmap=True)
    gen = model(clip, positions=slice(-2, None))
    err = model.error_maps(gen)
    assert torch.allclose(s.maps, torch.stack([err.app, err.motion, err.mem], 2))
    p = cfg.score_patch
    ckpt = model.heatmap(s.maps)
    assert torch.allclose(ckpt, local_error_map(model.combined_map(err), p))
    weighed = torch.maximum(torch.maximum(5 * err.app, err.motion), 100 * err.mem)  # 0.5 / 0.1, 1 / 1, 1 / 0.01
    assert torch.allclose(ckpt, local_error_map(weighed, p), rtol=1e-5)
    scene = {"app": 0.2, "motion": 0.5, "speed": 1.0, "dir": 1.0, "feat": 1.0}  # no unit for the memory
    in_scene = torch.maximum(2.5 * err.app, 2 * err.motion)
    assert torch.allclose(model.heatmap(s.maps, scene), local_error_map(in_scene, p), rtol=1e-5)
    assert torch.allclose(model.heatmap(s.maps[0, 1], scene, patch=1), in_scene[0, 1], rtol=1e-5)  # one frame's
    # maps, not averaged
    with pytest.raises(ValueError, match="3 cues"):
        model.heatmap(s.maps[:, :, :2])


def test_the_speed_cue_is_the_flow_magnitude_whatever_the_prediction():
    model = OCRGANVideo(tiny_cfg(motion=True)).eval()
    clip = rand_clip(model.cfg, 1)
    clip[:, :, -2:] = 0
    clip[:, -1, -2, 2:4, 2:4] = 3.0  # an object moving 3 pixels per frame to the right in the last frame
    clip[:, -1, -1, 2:4, 2:4] = 4.0  # and 4 down
    s = model.score_detailed(clip, positions=slice(-1, None))
    maps = model.error_maps(model(clip, positions=slice(-1, None)))
    assert maps.speed[0, 0, 2, 2] == 5.0 and maps.speed.sum() == 20.0
    assert s.speed.shape == s.raw.shape and s.speed.item() > 0


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
