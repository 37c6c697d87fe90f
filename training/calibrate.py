"""Fit the score's scales, statistics and threshold on normal footage, by the same rule the service scores with."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
from tqdm import tqdm

from model import OCRGANVideo, iter_clip_scores
from model.memory import MAX_PATCHES
from model.scales import cue_values, extreme
from model.scoring import CUES
from model.windows import iter_clip_windows, postprocess

log = logging.getLogger(__name__)


SCALES = (*(f"{k}_scale" for k in CUES), "rec_scale")


def _score_all(model: OCRGANVideo, sequences: list[torch.Tensor], batch: int, desc: str) -> list[list]:
    out = [list(iter_clip_scores(model, frames, batch=batch))
           for frames in tqdm(sequences, desc=desc, unit="sequence", leave=False)]
    return [p for p in out if p]


@torch.no_grad()
def fit_memory(model: OCRGANVideo, sequences: Iterable[torch.Tensor], batch: int = 8, seed: int = 0) -> int:
    """Fill a model's memory of normal patches (model.memory) from normal sequences of model input frames, each
    frame's patches taken once, as scoring sees them; of long footage, a random share of each frame's patches, so
    that at most about MAX_PATCHES are held whatever its length. Returns the number of patches it was chosen from."""
    if not model.cfg.memory_size:
        return 0
    model.eval()
    device = next(model.parameters()).device
    t = model.cfg.num_frames
    sequences = list(sequences)
    total_frames = sum(len(s) for s in sequences)
    g = torch.Generator().manual_seed(seed)
    feats = []
    for frames in tqdm(sequences, desc="memory", unit="sequence", leave=False):
        windows = list(iter_clip_windows(frames, t, model.cfg.stride))
        for a in range(0, len(windows), batch):
            ws = windows[a:a + batch]
            k = max(len(w.indices) for w in ws)
            gen = model(torch.stack([w.frames for w in ws]).to(device), positions=slice(t - k, t))
            for i, w in enumerate(ws):
                f = gen.features[i, k - len(w.indices):].flatten(0, -2).cpu()
                share = min(1.0, MAX_PATCHES / (total_frames * f.shape[0] / len(w.indices)))
                feats.append(f if share >= 1 else f[torch.rand(len(f), generator=g) < share])
    if not feats:
        raise ValueError("the memory needs at least one frame of normal footage")
    bank = torch.cat(feats)
    model.set_memory(bank)
    log.info("memory of %d normal patches chosen from %d", model.cfg.memory_size, len(bank))
    return len(bank)


def fit_units(model: OCRGANVideo, sequences: Iterable[torch.Tensor], more: Iterable[torch.Tensor] = (),
              batch: int = 8) -> dict[str, float]:
    """Set each cue's unit (CUES) from normal sequences of model input frames: its extreme on `sequences`, or on
    `sequences` and `more` together where that is larger. `more` is further normal footage of the scene (the
    training clips): an extreme taken on a few held-out clips understates how far a cue strays on the rest of a
    scene's normal footage (on Ped2 a quarter of the normal test frames passed the appearance error's unit fitted
    on the two held-out clips, and 8% that fitted on all sixteen), while footage the model was trained on can only
    lower it, so the larger of the two is kept."""
    model.eval()
    for name in SCALES:
        if hasattr(model, name):
            getattr(model, name).fill_(1.0)
    held = _score_all(model, list(sequences), batch, "units (held out)")
    if not held:
        raise ValueError("calibration needs at least one frame of normal footage")
    held_cues = cue_values([p for seq in held for p in seq])
    extra = _score_all(model, list(more), batch, "units (more footage)")
    all_cues = cue_values([p for seq in held + extra for p in seq])
    for name, values in held_cues.items():
        if values is not None:
            getattr(model, f"{name}_scale").fill_(max(extreme(values), extreme(all_cues[name])))
    return model.scales()


def calibrate(model: OCRGANVideo, sequences: Iterable[torch.Tensor], quantile: float = 0.995,
              batch: int = 8, units: bool = True) -> dict[str, float]:
    """From normal sequences of model input frames: the units of the cues (fit_units, unless `units` is False and
    they are set already), the error map's typical peak (for heatmaps), then the mean/std of published scores and
    the threshold (the `quantile` of normalised scores)."""
    model.eval()
    sequences = list(sequences)
    if units:
        fit_units(model, sequences, batch=batch)
    second = _score_all(model, sequences, batch, "calibrating")
    model.rec_scale.fill_(float(torch.cat([p.rec for seq in second for p in seq]).mean()) or 1.0)
    model.set_score_statistics(0.0, 1.0, float("inf"))
    smoothed = [postprocess(model, torch.cat([p.raw for p in seq])).score for seq in second]
    scores = torch.cat(smoothed).numpy()
    mean, std = float(scores.mean()), float(scores.std()) or 1.0
    threshold = float(np.quantile((scores - mean) / std, quantile))
    model.set_score_statistics(mean, std, threshold)
    stats = {k: float(getattr(model, k)) for k in SCALES if hasattr(model, k)}
    stats.update({"score_mean": mean, "score_std": std, "threshold": threshold, "threshold_quantile": quantile,
                  "frames": len(scores)})
    log.info("calibrated on %d frames: mean %.4g std %.4g threshold %.3g", len(scores), mean, std, threshold)
    return stats
