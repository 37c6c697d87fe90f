"""Fit the score's scales, statistics and threshold on normal footage, by the same rule the service scores with."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
from tqdm import tqdm

from model import OCRGANVideo, iter_clip_scores
from model.memory import MAX_PATCHES, coreset
from model.scales import cue_values, extreme
from model.scoring import CUES
from model.windows import iter_clip_windows, postprocess

log = logging.getLogger(__name__)


SCALES = (*(f"{k}_scale" for k in CUES), "rec_scale")
MEMORY_FOLDS = 4  # footage the memory holds is scored against memories chosen without a quarter of it (fold_banks)


Banks = list[dict[str, torch.Tensor]]  # per sequence, the memories it is scored against, by buffer name (fold_banks)


def holds_footage(model: OCRGANVideo) -> bool:
    """Whether the model keeps memories filled from normal footage, near every patch of what they were filled
    from: the learned memory (`mem`), the motion memory (`dir` with direction_memory)."""
    return bool(model.cfg.memory_size or (model.cfg.motion and model.cfg.direction_memory))


def _score_all(model: OCRGANVideo, sequences: list[torch.Tensor], batch: int, desc: str,
               banks: Banks | None = None) -> list[list]:
    """Each sequence's window scores; with `banks` (fold_banks), each scored against its own memories, the model's
    restored afterwards."""
    setters = {"memory": model.set_memory, "direction_bank": model.set_direction_bank}
    saved = {name: getattr(model, name).clone() for name in banks[0]} if banks else {}
    out = []
    try:
        for i, frames in enumerate(tqdm(sequences, desc=desc, unit="sequence", leave=False)):
            for name, bank in (banks[i] if banks else {}).items():
                setters[name](bank)
            out.append(list(iter_clip_scores(model, frames, batch=batch)))
    finally:
        for name, buffer in saved.items():
            getattr(model, name).copy_(buffer)
    return [p for p in out if p]


def fold_pieces(model: OCRGANVideo, sequences: Iterable[torch.Tensor],
                folds: int = MEMORY_FOLDS) -> list[torch.Tensor]:
    """Normal sequences for a model with a memory, cut into at least `folds` pieces where they are fewer (each
    sequence into equal contiguous parts of at least two windows' frames), so that footage of one or two long
    videos can still be held out of the memory a part at a time (fold_banks); without a memory, as they are."""
    sequences = list(sequences)
    if not holds_footage(model) or len(sequences) >= folds:
        return sequences
    min_frames = 2 * model.cfg.num_frames
    per = -(-folds // max(1, len(sequences)))
    out = []
    for s in sequences:
        n = max(1, min(per, len(s) // min_frames))
        out += list(torch.tensor_split(s, n)) if n > 1 else [s]
    return out


def fold_banks(model: OCRGANVideo, sequences: list[torch.Tensor], features: list[torch.Tensor],
               folds: int = MEMORY_FOLDS) -> Banks | None:
    """For normal sequences that fill the model's memories (`features`: fit_memory's return for them, the patch
    features of the learned memory; the motion memory's patches are taken from their motion band): for each, the
    memories chosen the same way from the other folds' sequences only (fold i holds sequences i, i + folds, ...).
    A memory is near every patch it holds, so a cue read on the footage it was filled from is smaller than on new
    normal footage of the scene: its unit and the score statistics taken there would flag much of the scene's
    normal footage later (on Ped2, with the memory filled from 14 training clips: a unit from the two held-out clips
    was exceeded by 19% of the normal test frames; from the four-fold out-of-memory values of the 14 clips, by 4%).
    None without a memory or with fewer than two sequences."""
    if not holds_footage(model) or len(sequences) < 2:
        return None
    k = min(folds, len(sequences))
    kinds = {}
    if model.cfg.memory_size:
        kinds["memory"] = (features, lambda x: coreset(x, model.cfg.memory_size, parts=model.memory_parts))
    if model.cfg.motion and model.cfg.direction_memory:
        nc = model.cfg.nc
        kinds["direction_bank"] = ([model.direction_patches(s[:, nc:nc + 2]) for s in sequences],
                                   lambda x: coreset(x, model.cfg.direction_memory))
    banks = [{name: make(torch.cat([f for j, f in enumerate(per) if j % k != i]))
              for name, (per, make) in kinds.items()} for i in range(k)]
    return [banks[j % k] for j in range(len(sequences))]


@torch.no_grad()
def fit_memory(model: OCRGANVideo, sequences: Iterable[torch.Tensor], batch: int = 8,
               seed: int = 0) -> list[torch.Tensor]:
    """Fill a model's memory of normal patches (model.memory) from normal sequences of model input frames, each
    frame's patches taken once, as scoring sees them; of long footage, a random share of each frame's patches, so
    that at most about MAX_PATCHES are held whatever its length. Returns the patch features it was chosen from, per
    sequence (for fold_banks; empty without a memory)."""
    if not model.cfg.memory_size:
        return []
    model.eval()
    device = next(model.parameters()).device
    t = model.cfg.num_frames
    sequences = list(sequences)
    total_frames = sum(len(s) for s in sequences)
    g = torch.Generator().manual_seed(seed)
    per_sequence = []
    for frames in tqdm(sequences, desc="memory", unit="sequence", leave=False):
        feats = []
        windows = list(iter_clip_windows(frames, t, model.cfg.stride))
        for a in range(0, len(windows), batch):
            ws = windows[a:a + batch]
            k = max(len(w.indices) for w in ws)
            gen = model(torch.stack([w.frames for w in ws]).to(device), positions=slice(t - k, t))
            for i, w in enumerate(ws):
                f = gen.features[i, k - len(w.indices):].flatten(0, -2).cpu()
                share = min(1.0, MAX_PATCHES / (total_frames * f.shape[0] / len(w.indices)))
                feats.append(f if share >= 1 else f[torch.rand(len(f), generator=g) < share])
        if feats:
            per_sequence.append(torch.cat(feats))
    if not per_sequence:
        raise ValueError("the memory needs at least one frame of normal footage")
    bank = torch.cat(per_sequence)
    model.set_memory(bank)
    log.info("memory of %d normal patches chosen from %d", model.cfg.memory_size, len(bank))
    return per_sequence


def fit_units(model: OCRGANVideo, sequences: Iterable[torch.Tensor], more: Iterable[torch.Tensor] = (),
              batch: int = 8, banks: Banks | None = None) -> dict[str, float]:
    """Set each cue's unit (CUES) from normal sequences of model input frames: its extreme on `sequences`, or on
    `sequences` and `more` together where that is larger. `more` is further normal footage of the scene (the
    training clips): an extreme taken on a few held-out clips understates how far a cue strays on the rest of a
    scene's normal footage (on Ped2 a quarter of the normal test frames passed the appearance error's unit fitted
    on the two held-out clips, and 8% that fitted on all sixteen), while footage the model was trained on can only
    lower it, so the larger of the two is kept. `banks` (fold_banks of `more`, which fills the memory) has each
    sequence of `more` scored against a memory that does not hold it."""
    model.eval()
    for name in SCALES:
        if hasattr(model, name):
            getattr(model, name).fill_(1.0)
    held = _score_all(model, list(sequences), batch, "units (held out)")
    extra = _score_all(model, list(more), batch, "units (more footage)", banks)
    if not held and not extra:
        raise ValueError("calibration needs at least one frame of normal footage")
    held_cues = cue_values([p for seq in held for p in seq])
    all_cues = cue_values([p for seq in held + extra for p in seq])
    for name, values in all_cues.items():
        if values is not None:
            held_extreme = extreme(held_cues[name]) if held else 0.0
            getattr(model, f"{name}_scale").fill_(max(held_extreme, extreme(values)))
    return model.scales()


def calibrate(model: OCRGANVideo, sequences: Iterable[torch.Tensor], quantile: float = 0.995,
              batch: int = 8, units: bool = True, banks: Banks | None = None) -> dict[str, float]:
    """From normal sequences of model input frames: the units of the cues (fit_units, unless `units` is False and
    they are set already), the error map's typical peak (for heatmaps), then the mean/std of published scores and
    the threshold (the `quantile` of normalised scores). `banks`: the sequences fill the memory, and each is scored
    against its fold's memory (fold_banks)."""
    model.eval()
    sequences = list(sequences)
    if units:
        fit_units(model, [], sequences, batch=batch, banks=banks)
    second = _score_all(model, sequences, batch, "calibrating", banks)
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


def calibrate_scene(model: OCRGANVideo, sequences: Iterable[torch.Tensor], quantile: float = 0.995,
                    flow: torch.Tensor | None = None) -> dict[str, float]:
    """Everything a scene's normal footage sets in a trained model: which way things move where (the direction
    prior, from `flow`, the sequences' motion band, where the model has one), its memory of normal patches, each
    cue's unit, the score statistics and the threshold, each sequence scored against a memory that does not hold it
    (fold_pieces, fold_banks). What `ocrgan calibrate` does, and how `ocrgan train` ends once validation has chosen
    the weights: a threshold read on a few held-out clips alone is the second-largest score of a few hundred frames."""
    if flow is not None:
        model.set_direction_prior(flow)
    seqs = fold_pieces(model, sequences)
    banks = fold_banks(model, seqs, fit_memory(model, seqs))
    return calibrate(model, seqs, quantile, banks=banks)
