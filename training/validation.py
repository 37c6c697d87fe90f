"""Model selection on held-out normal footage: prediction error, and how well the scores separate normal
frames from synthetic anomalies of several kinds placed where things move, or seldom do (no test labels are ever
read)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from model import OCRGANVideo, Window, preprocess_sequence, score_windows
from model.windows import window_ends, window_positions
from training.anomalies import KINDS, MotionPrior, forge_window
from training.frame_store import FrameStore


@dataclass
class ValidationSet:
    """Windows of the validation sequences (each frame published once, as the scoring rule does) and fixed
    forgeries of them, one of each kind per window."""

    windows: list[Window]
    forged: list[Window]
    kinds: list[str]  # the kind of each forged window
    masks: list[torch.Tensor] = field(default_factory=list)  # (published,) altered positions of each forged window


VALIDATION_VERSION = 8  # bumped whenever the set or its score changes: selection scores are then incomparable


def _source(store: FrameStore) -> np.ndarray:
    """The uint8 frames forgeries are made on, as decoded: those the flow is computed on with the motion band."""
    return store.big if store.big is not None else store.plain


def _with_context(store: FrameStore, i: int, end: int, num_frames: int) -> np.ndarray:
    """uint8 frames end-T .. end of sequence i (one before the window, for the flow of its first frame),
    frame 0 repeated before the start."""
    idx = window_positions(end, num_frames + 1).numpy() + int(store.offsets[i])
    return _source(store)[idx]


def model_window(frames: np.ndarray, store: FrameStore) -> torch.Tensor:
    """uint8 frames with one frame of context first -> model input (T, in_channels, h, w)."""
    return preprocess_sequence(frames, store.cfg)[1:]


def motion_prior(store: FrameStore) -> MotionPrior:
    """Where and how things move in a store's footage (its flow, computed here for a model without the
    motion band)."""
    if store.flow is not None:
        return MotionPrior.from_flow(store.flow)
    cfg = store.cfg.replace(motion=True)
    return MotionPrior.from_flow(torch.cat([preprocess_sequence(store.raw_sequence(i), cfg)[:, -2:]
                                            for i in range(len(store.sequences))]))


def build_validation_set(store: FrameStore, num_frames: int, stride: int, prior: MotionPrior | None = None,
                         seed: int = 1234, max_windows: int = 64, kinds: tuple[str, ...] = KINDS,
                         progress: bool = False) -> ValidationSet:
    """`prior`: where and how things move in the training footage (the validation footage's own when not
    given)."""
    prior = prior or motion_prior(store)
    if store.big is not None:
        prior = prior.scaled(store.cfg.flow_scale)
    ends = [(i, e, p) for i, s in enumerate(store.sequences) for e, p in window_ends(s.length, stride)]
    if len(ends) > max_windows:
        pick = np.linspace(0, len(ends) - 1, max_windows).round().astype(int)
        ends = [ends[k] for k in pick]
    g = torch.Generator().manual_seed(seed)
    windows, forged, forged_kinds, masks = [], [], [], []
    for k, (i, e, p) in enumerate(tqdm(ends, desc="synthetic anomalies", unit="window", leave=False,
                                       disable=not progress)):
        frames = _with_context(store, i, e, num_frames)
        idx = list(range(e - p + 1, e + 1))
        windows.append(Window(store.window(i, e, num_frames), idx))
        donor = _with_context(store, *ends[(k + len(ends) // 2) % len(ends)][:2], num_frames)
        for kind in kinds:
            f = forge_window(frames, kind, prior, donor, p, g)
            forged.append(Window(model_window(f, store), idx))
            forged_kinds.append(kind)
            masks.append(torch.ones(p, dtype=torch.bool))
    return ValidationSet(windows, forged, forged_kinds, masks)


@torch.no_grad()
def validation_loss(model: OCRGANVideo, vs: ValidationSet, batch: int = 8) -> float:
    """Mean absolute prediction error on the published positions of the validation windows."""
    model.eval()
    device = next(model.parameters()).device
    t = model.cfg.num_frames
    total, n = 0.0, 0
    for a in range(0, len(vs.windows), batch):
        ws = vs.windows[a:a + batch]
        k = max(len(w.indices) for w in ws)
        gen = model(torch.stack([w.frames for w in ws]).to(device), positions=slice(t - k, t))
        err = (gen.fake - gen.target).abs().flatten(2).mean(2)  # (B, k)
        for i, w in enumerate(ws):
            total += float(err[i, k - len(w.indices):].sum())
            n += len(w.indices)
    return total / max(n, 1)


def _scores(model: OCRGANVideo, windows: list[Window], batch: int, desc: str | None) -> list[torch.Tensor]:
    starts = range(0, len(windows), batch)
    return [r.raw for a in tqdm(starts, desc=desc, unit="batch", leave=False, disable=desc is None)
            for r in score_windows(model, windows[a:a + batch])]


def pseudo_anomaly_auc(model: OCRGANVideo, vs: ValidationSet, batch: int = 8,
                       progress: bool = False) -> dict[str, float]:
    """Frame AUC of the normal validation frames against each kind of synthetic anomaly, and their mean
    ("mean", the selection score)."""
    model.eval()
    neg = torch.cat(_scores(model, vs.windows, batch, "validating" if progress else None)).numpy()
    fake = _scores(model, vs.forged, batch, "validating anomalies" if progress else None)
    out = {}
    for kind in dict.fromkeys(vs.kinds):
        pos = torch.cat([f[m] for f, m, k in zip(fake, vs.masks, vs.kinds, strict=True) if k == kind]).numpy()
        y = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
        out[kind] = float(roc_auc_score(y, np.r_[neg, pos]))
    out["mean"] = float(np.mean(list(out.values())))
    return out
