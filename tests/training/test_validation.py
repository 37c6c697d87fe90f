
from model import OCRGANVideo
from tests.model.helpers import tiny_cfg
from tests.synthetic import moving_shapes
from training.frame_store import FrameStore
from training.validation import build_validation_set, pseudo_anomaly_auc, validation_loss


def _Store(clips, cfg) -> FrameStore:
    return FrameStore.from_frames(cfg, clips)


def _clips(cfg):
    return [moving_shapes(30, *cfg.hw, seed=seed)[0] for seed in range(2)]


def test_every_validation_frame_is_published_once_and_forged_three_times():
    cfg = tiny_cfg(isize=(64, 96))
    vs = build_validation_set(_Store(_clips(cfg), cfg), cfg.num_frames, cfg.stride)
    published = [(k, i) for k, w in enumerate(vs.windows) for i in w.indices]
    assert len(published) == len(set(published)) == 2 * 28  # windows end at 3, 7, ..., 27 -> frames 0..27 of 30
    assert len(vs.forged) == 3 * len(vs.windows) and len(vs.masks) == len(vs.forged)
    assert all(m.shape == (cfg.stride,) and m.any() for m in vs.masks)


def test_an_untrained_predictor_already_sees_a_fast_object():
    cfg = tiny_cfg(isize=(64, 96))
    vs = build_validation_set(_Store(_clips(cfg), cfg), cfg.num_frames, cfg.stride)
    model = OCRGANVideo(cfg).eval()  # residual: starts as "nothing moves", i.e. frame differencing
    assert pseudo_anomaly_auc(model, vs) > 0.6  # well above chance before any training
    assert 0 < validation_loss(model, vs) < 0.1
