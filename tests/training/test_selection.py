import copy

import pytest

from model import OCRGANVideo
from model.scales import extreme
from model.scoring import CUES
from testkit.synthetic import moving_shapes
from tests.model.helpers import tiny_cfg
from training.anomalies import KINDS
from training.frame_store import FrameStore
from training.selection import (
    APP_WEIGHTS,
    DIR_WEIGHTS,
    FEAT_WEIGHT,
    MOTION_WEIGHTS,
    auc_se,
    select_weights,
    window_parts,
)
from training.validation import build_validation_set, pseudo_anomaly_auc


@pytest.fixture(scope="module")
def validation():
    cfg = tiny_cfg(isize=(32, 48), motion=True)
    store = FrameStore.from_frames(cfg, [moving_shapes(30, *cfg.flow_hw, seed=s)[0] for s in range(2)])
    return cfg, build_validation_set(store, cfg.num_frames, cfg.stride)


def test_the_weighting_with_the_best_mean_pseudo_anomaly_auc_is_chosen(validation):
    cfg, vs = validation
    model = OCRGANVideo(cfg).eval()
    weights, table = select_weights(model, vs)
    assert len(table) == len(MOTION_WEIGHTS) * len(APP_WEIGHTS) * len(DIR_WEIGHTS)
    assert {r["w_score_feat"] for r in table} == {FEAT_WEIGHT}  # fixed: the forgeries overrate it
    assert all(set(KINDS) <= set(row) and 0 < row["mean_se"] < 0.1 for row in table)
    chosen = next(r for r in table if all(r[f"w_score_{k}"] == weights[f"w_score_{k}"] for k in CUES))
    total = lambda r: sum(r[f"w_score_{k}"] for k in CUES)  # noqa: E731
    assert all(r["mean"] < chosen["mean"] or (r["mean"] == chosen["mean"] and total(r) >= total(chosen))
               for r in table)


def test_the_table_predicts_what_the_model_scores(validation):
    """A row's AUCs are those of the model scoring with that weighting once its parts are calibrated on the
    normal validation frames."""
    cfg, vs = validation
    model = OCRGANVideo(cfg).eval()
    _, table = select_weights(model, vs)
    row = next(r for r in table if r["w_score_app"] == 0.5 and r["w_score_speed"] == 1 and r["w_score_motion"] == 0)
    model.cfg = model.cfg.replace(**{f"w_score_{k}": row[f"w_score_{k}"] for k in CUES})
    for name, values in window_parts(model, vs.windows).items():
        if values is not None:  # no memory: no `mem` cue
            getattr(model, f"{name}_scale").fill_(extreme(values))
    aucs = pseudo_anomaly_auc(model, vs)
    assert all(aucs[k] == pytest.approx(row[k], abs=1e-6) for k in KINDS)


def test_without_the_motion_band_the_appearance_error_is_the_score(validation):
    cfg = tiny_cfg(isize=(32, 48))
    store = FrameStore.from_frames(cfg, [moving_shapes(30, 32, 48, seed=s)[0] for s in range(2)])
    weights, table = select_weights(OCRGANVideo(cfg).eval(), build_validation_set(store, cfg.num_frames, cfg.stride))
    assert weights["w_score_app"] == 1.0 and {r["w_score_app"] for r in table} == {1.0}
    assert {(r["w_score_motion"], r["w_score_speed"]) for r in table} == {(0.0, 0.0)}


def test_with_a_foreign_view_the_weights_are_chosen_on_the_mean_of_both_views(validation):
    """Each row keeps the scene's own figures (as without the view), adds the view's, and is ranked by the mean of
    the two views' means."""
    cfg, vs = validation
    model = OCRGANVideo(cfg).eval()
    store = FrameStore.from_frames(cfg, [moving_shapes(30, *cfg.flow_hw, seed=s)[0] for s in range(2)]).foreign()
    view = build_validation_set(store, cfg.num_frames, cfg.stride)
    camera = copy.deepcopy(model)  # its units read on the view's normal frames
    for name, values in window_parts(camera, view.windows).items():
        if values is not None:
            getattr(camera, f"{name}_scale").fill_(extreme(values))
    _, own = select_weights(model, vs, model.scales())
    weights, table = select_weights(model, vs, model.scales(), foreign=(camera, view))
    _, alone = select_weights(camera, view, camera.scales())
    assert len(table) == len(own) == len(alone)
    for row, mine, theirs in zip(table, own, alone, strict=True):
        assert all(row[k] == mine[k] for k in KINDS) and row["own_mean"] == mine["mean"]
        assert all(row[f"foreign_{k}"] == theirs[k] for k in KINDS)
        assert row["mean"] == pytest.approx((mine["mean"] + theirs["mean"]) / 2)
    chosen = next(r for r in table if all(r[f"w_score_{k}"] == weights[f"w_score_{k}"] for k in CUES))
    assert chosen["mean"] == max(r["mean"] for r in table)


def test_cues_kept_out_are_never_weighted(validation):
    cfg, vs = validation
    model = OCRGANVideo(cfg).eval()
    weights, table = select_weights(model, vs, without=("dir", "motion"))
    assert len(table) == len(APP_WEIGHTS)  # flow magnitude alone, at every appearance weight
    assert all(r["w_score_dir"] == 0 and r["w_score_motion"] == 0 for r in table)
    assert weights["w_score_dir"] == weights["w_score_motion"] == 0 and weights["w_score_speed"] == 1


def test_auc_standard_error_by_hand():
    # AUC 0.8 from 50 normal and 50 anomalous: Q1 = 0.8/1.2, Q2 = 1.28/1.8,
    # var = (0.16 + 49 (Q1 - 0.64) + 49 (Q2 - 0.64)) / 2500 = 0.00198
    assert auc_se(0.8, 50, 50) == pytest.approx(0.0445, abs=2e-4)
    assert auc_se(1.0, 50, 50) == 0.0
