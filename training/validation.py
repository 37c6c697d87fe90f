"""Model selection on held-out normal clips: prediction error, and how well the scores separate
normal frames from synthetic forgeries of them (no test labels are ever read)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from model import OCRGANVideo, Window, score_windows
from model.augment import forge_clip
from training.frame_store import FrameStore


@dataclass
class ValidationSet:
    """Windows of the validation clips (each frame published once, as the scoring rule does) and
    fixed forgeries of them."""

    windows: list[Window]
    forged: list[Window]
    masks: list[torch.Tensor]  # (stride,) which published positions of each forged window were altered


VALIDATION_KINDS = ("fast",)  # selection asks: is an object moving too fast seen?
VALIDATION_VERSION = 2  # bumped whenever the set or its score changes: selection scores are then incomparable


def build_validation_set(store: FrameStore, num_frames: int, stride: int, seed: int = 1234,
                         max_windows: int = 128, forgeries_per_window: int = 3,
                         kinds: tuple[str, ...] = VALIDATION_KINDS) -> ValidationSet:
    ends = [(i, e) for i, s in enumerate(store.sequences) for e in range(stride - 1, s.length, stride)]
    if len(ends) > max_windows:
        pick = np.linspace(0, len(ends) - 1, max_windows).round().astype(int)
        ends = [ends[k] for k in pick]
    g = torch.Generator().manual_seed(seed)
    windows, forged, masks = [], [], []
    for k, (i, e) in enumerate(ends):
        clip = store.window(i, e, num_frames)
        idx = list(range(e - stride + 1, e + 1))
        windows.append(Window(clip, idx))
        for r in range(forgeries_per_window):
            f, m = forge_clip(clip, kinds[(k + r) % len(kinds)], g)
            forged.append(Window(f, idx))
            masks.append(m[-stride:])
    return ValidationSet(windows, forged, masks)


@torch.no_grad()
def validation_loss(model: OCRGANVideo, vs: ValidationSet, batch: int = 8) -> float:
    """Mean absolute prediction error on the published positions of the validation windows."""
    model.eval()
    device = next(model.parameters()).device
    t = model.cfg.num_frames
    k = len(vs.windows[0].indices)
    total, n = 0.0, 0
    for a in range(0, len(vs.windows), batch):
        clip = torch.stack([w.frames for w in vs.windows[a:a + batch]]).to(device)
        gen = model(clip, positions=slice(t - k, t))
        total += float((gen.fake - gen.target).abs().mean()) * len(clip)
        n += len(clip)
    return total / max(n, 1)


def pseudo_anomaly_auc(model: OCRGANVideo, vs: ValidationSet, batch: int = 8) -> float:
    """Frame AUC of normal validation frames against their forged versions' altered frames."""
    model.eval()
    normal = [r.raw for a in range(0, len(vs.windows), batch) for r in score_windows(model, vs.windows[a:a + batch])]
    fake = [r.raw for a in range(0, len(vs.forged), batch) for r in score_windows(model, vs.forged[a:a + batch])]
    neg = torch.cat(normal).numpy()
    pos = torch.cat([f[m] for f, m in zip(fake, vs.masks, strict=True)]).numpy()
    if len(pos) == 0:
        return float("nan")
    y = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
    return float(roc_auc_score(y, np.r_[neg, pos]))
