"""How the score combines its parts, chosen on validation data: for each weighting of the appearance error,
the flow error and the discriminator-feature distance, how well the score separates normal validation frames
from each kind of synthetic anomaly. Of the weightings whose mean AUC over kinds is within one standard error
of the best (differences the validation set cannot resolve), the one that adds the least to the flow error
is kept: the one-standard-error rule, which prefers the simpler score when the data cannot tell."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from model import OCRGANVideo, Window
from model.scoring import feature_distance, pooled_error
from training.calibrate import extreme
from training.validation import ValidationSet

log = logging.getLogger(__name__)
APP_WEIGHTS = (0.25, 0.5, 1.0)  # relative to the flow error's weight of 1, each in units of its extreme; the
# appearance error always counts when it is far beyond anything normal (a foreign object at a normal speed)
FEAT_WEIGHTS = (0.0, 0.5, 1.0)  # of the feature distance, in the same units


@dataclass
class Parts:
    app: torch.Tensor  # (n, H, W) appearance error maps of the published frames
    motion: torch.Tensor | None  # (n, H, W) flow error maps
    feat: torch.Tensor  # (n,) feature distances


@torch.no_grad()
def window_parts(model: OCRGANVideo, windows: list[Window], batch: int = 8) -> Parts:
    model.eval()
    device = next(model.parameters()).device
    t = model.cfg.num_frames
    apps, motions, feats = [], [], []
    for a in range(0, len(windows), batch):
        chunk = windows[a:a + batch]
        k = len(chunk[0].indices)
        clip = torch.stack([w.frames for w in chunk]).to(device)
        gen = model(clip, positions=slice(t - k, t))
        app, motion = model.error_maps(gen)
        d = model.discriminator
        apps.append(app.flatten(0, 1).cpu())
        motions.append(motion.flatten(0, 1).cpu() if motion is not None else None)
        feats.append(feature_distance(d.frame_features(gen.target), d.frame_features(gen.fake)).flatten().cpu())
    return Parts(torch.cat(apps), torch.cat(motions) if motions[0] is not None else None, torch.cat(feats))


def auc_se(auc: float, n_neg: int, n_pos: int) -> float:
    """Standard error of an AUC (Hanley and McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def _score(p: Parts, w_app: float, w_feat: float, scales: dict[str, float], patch: int) -> np.ndarray:
    """As OCRGANVideo.score_detailed combines the parts (the larger of the weighted, scaled ones)."""
    err = w_app * p.app / scales["app"]
    if p.motion is not None:
        err = torch.maximum(err, p.motion / scales["motion"])
    rec = pooled_error(err[None], patch)[0]
    return torch.maximum(rec, w_feat * p.feat / scales["feat"]).numpy()


def select_weights(model: OCRGANVideo, vs: ValidationSet) -> tuple[dict[str, float], list[dict]]:
    """The score weights (w_score_app, w_score_motion, w_score_feat) chosen by the one-standard-error rule on
    the mean pseudo-anomaly AUC over kinds, and the table of every weighting tried. Each part is in units of
    its extreme on the normal validation frames, as calibration will put it."""
    patch = model.cfg.score_patch
    normal, forged = window_parts(model, vs.windows), window_parts(model, vs.forged)
    kinds = np.array(vs.kinds).repeat(len(vs.windows[0].indices))
    scales = {"app": extreme(pooled_error(normal.app[None], patch)[0]), "feat": extreme(normal.feat),
              "motion": extreme(pooled_error(normal.motion[None], patch)[0]) if normal.motion is not None else 1.0}
    apps = APP_WEIGHTS if normal.motion is not None else (1.0,)
    rows = []
    for w_app, w_feat in itertools.product(apps, FEAT_WEIGHTS):
        if w_app == 0 and normal.motion is None:
            continue
        neg, pos = _score(normal, w_app, w_feat, scales, patch), _score(forged, w_app, w_feat, scales, patch)
        row = {"w_score_app": w_app, "w_score_feat": w_feat}
        ses = []
        for kind in dict.fromkeys(vs.kinds):
            p = pos[kinds == kind]
            row[kind] = float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(p))], np.r_[neg, p]))
            ses.append(auc_se(row[kind], len(neg), len(p)))
        row["mean"] = float(np.mean([row[k] for k in dict.fromkeys(vs.kinds)]))
        row["mean_se"] = float(np.sqrt(np.sum(np.square(ses)))) / len(ses)
        rows.append(row)
    top = max(rows, key=lambda r: r["mean"])
    close = [r for r in rows if r["mean"] >= top["mean"] - top["mean_se"]]
    best = min(close, key=lambda r: (r["w_score_app"] + r["w_score_feat"], -r["mean"]))
    log.info("score weights chosen on validation: appearance %.2g, feature %.2g (mean pseudo-anomaly AUC %.4f)",
             best["w_score_app"], best["w_score_feat"], best["mean"])
    weights = {"w_score_app": best["w_score_app"], "w_score_motion": 1.0, "w_score_feat": best["w_score_feat"]}
    return weights, rows
