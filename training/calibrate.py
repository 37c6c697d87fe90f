"""Fit the score's scales, statistics and threshold on normal footage, by the same rule the service scores with."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
from tqdm import tqdm

from model import OCRGANVideo, iter_clip_scores
from model.scales import cue_values, extreme
from model.windows import postprocess

log = logging.getLogger(__name__)


SCALES = ("app_scale", "motion_scale", "speed_scale", "rec_scale", "feat_scale")


def calibrate(model: OCRGANVideo, sequences: Iterable[torch.Tensor], quantile: float = 0.995,
              batch: int = 8) -> dict[str, float]:
    """From normal sequences of model input frames: the units of the appearance error, the flow error, the flow's
    magnitude and the feature distance (their extremes on these frames), the error map's typical peak (for
    heatmaps), then the mean/std of published scores and the threshold (the `quantile` of normalised scores).
    Two passes: the error map depends on the units."""
    model.eval()
    sequences = list(sequences)
    for name in SCALES:
        getattr(model, name).fill_(1.0)

    def score_all(desc: str) -> list[list]:
        out = []
        for frames in tqdm(sequences, desc=desc, unit="sequence", leave=False):
            out.append(list(iter_clip_scores(model, frames, batch=batch)))
        return [p for p in out if p]

    first = score_all("calibrating (1/2)")
    if not first:
        raise ValueError("calibration needs at least one frame of normal footage")
    for name, values in cue_values([p for seq in first for p in seq]).items():
        getattr(model, f"{name}_scale").fill_(extreme(values) if values is not None else 1.0)
    second = score_all("calibrating (2/2)")
    model.rec_scale.fill_(float(torch.cat([p.rec for seq in second for p in seq]).mean()) or 1.0)
    model.set_score_statistics(0.0, 1.0, float("inf"))
    smoothed = [postprocess(model, torch.cat([p.raw for p in seq])).score for seq in second]
    scores = torch.cat(smoothed).numpy()
    mean, std = float(scores.mean()), float(scores.std()) or 1.0
    threshold = float(np.quantile((scores - mean) / std, quantile))
    model.set_score_statistics(mean, std, threshold)
    stats = {k: float(getattr(model, k)) for k in SCALES}
    stats.update({"score_mean": mean, "score_std": std, "threshold": threshold, "threshold_quantile": quantile,
                  "frames": len(scores)})
    log.info("calibrated on %d frames: mean %.4g std %.4g threshold %.3g", len(scores), mean, std, threshold)
    return stats
