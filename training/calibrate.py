"""Fit the score statistics and threshold on normal footage, by the same rule the service scores with."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch

from model import OCRGANVideo, iter_clip_scores
from model.scoring import combine_scores
from model.windows import postprocess

log = logging.getLogger(__name__)


def calibrate(model: OCRGANVideo, sequences: Iterable[torch.Tensor], quantile: float = 0.995,
              batch: int = 8) -> dict[str, float]:
    """Set rec/feat scales (their means on normal frames), the mean/std of published scores and the
    threshold (the `quantile` of normalised scores) from normal sequences of preprocessed frames."""
    model.eval()
    recs, feats = [], []
    for frames in sequences:
        parts = list(iter_clip_scores(model, frames, batch=batch))
        if parts:
            recs.append(torch.cat([p.rec for p in parts]))
            feats.append(torch.cat([p.feat for p in parts]))
    if not recs:
        raise ValueError("calibration needs at least one frame of normal footage")
    rec_all, feat_all = torch.cat(recs), torch.cat(feats)
    rec_scale = float(rec_all.mean()) or 1.0
    feat_scale = float(feat_all.mean()) or 1.0
    model.rec_scale.fill_(rec_scale)
    model.feat_scale.fill_(feat_scale)
    cfg = model.cfg
    smoothed = []
    model.set_score_statistics(0.0, 1.0, float("inf"))
    for rec, feat in zip(recs, feats, strict=True):
        raw = combine_scores(rec, feat, cfg.w_score_rec, cfg.w_score_feat, model.rec_scale, model.feat_scale)
        smoothed.append(postprocess(model, raw).score)
    scores = torch.cat(smoothed).numpy()
    mean, std = float(scores.mean()), float(scores.std()) or 1.0
    normalised = (scores - mean) / std
    threshold = float(np.quantile(normalised, quantile))
    model.set_score_statistics(mean, std, threshold)
    stats = {"rec_scale": rec_scale, "feat_scale": feat_scale, "score_mean": mean, "score_std": std,
             "threshold": threshold, "threshold_quantile": quantile, "frames": len(scores)}
    log.info("calibrated on %d frames: mean %.4g std %.4g threshold %.3g", len(scores), mean, std, threshold)
    return stats
