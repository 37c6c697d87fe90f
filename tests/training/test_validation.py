import pytest

from model import OCRGANVideo
from testkit.synthetic import moving_shapes
from tests.model.helpers import tiny_cfg
from training.anomalies import KINDS
from training.frame_store import FrameStore
from training.validation import build_validation_set, pseudo_anomaly_auc, validation_loss


def _store(cfg) -> FrameStore:
    return FrameStore.from_frames(cfg, [moving_shapes(30, *cfg.flow_hw, seed=seed)[0] for seed in range(2)])


@pytest.mark.parametrize("motion", [False, True])
def test_every_validation_frame_is_published_once_and_forged_once_per_kind(motion):
    cfg = tiny_cfg(isize=(32, 48), motion=motion)
    vs = build_validation_set(_store(cfg), cfg.num_frames, cfg.stride)
    published = [(k, i) for k, w in enumerate(vs.windows) for i in w.indices]
    assert len(published) == len(set(published)) == 2 * 30  # windows end at 3, 7, ..., 27 and at 29: all 30 frames
    assert len(vs.forged) == len(KINDS) * len(vs.windows) == len(vs.kinds) == len(vs.masks)
    assert vs.kinds[: len(KINDS)] == list(KINDS)
    assert all(w.frames.shape == (cfg.num_frames, cfg.in_channels, *cfg.hw) for w in vs.windows + vs.forged)
    assert all(m.shape == (len(vs.windows[k // len(KINDS)].indices),) and m.all() for k, m in enumerate(vs.masks))
    assert [len(w.indices) for w in vs.windows[-2:]] == [cfg.stride, 30 % cfg.stride]  # the last frames too


def test_an_untrained_model_with_the_motion_band_already_sees_fast_objects():
    cfg = tiny_cfg(isize=(32, 48), motion=True)
    vs = build_validation_set(_store(cfg), cfg.num_frames, cfg.stride)
    model = OCRGANVideo(cfg).eval()  # predicts little motion: its flow error is about the speed
    model.cfg = model.cfg.replace(w_score_app=0.0, w_score_feat=0.0)
    aucs = pseudo_anomaly_auc(model, vs)
    assert set(aucs) == {*KINDS, "mean"}
    assert aucs["fast"] > 0.7  # well above chance before any training (forgeries at 1.5-3x the normal speed)
    assert 0 < validation_loss(model, vs) < 1
