"""Synthetic forgeries of real clips: what the discriminator learns an anomaly may not look like.

Spatial ones as in OCR-GAN (CutPaste, Cutout) and temporal ones (a frozen patch, a patch whose
frames are shuffled, a patch that moves too fast). Clips are (B, T, C, H, W) in the model's range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("cutpaste", "cutout", "frozen", "shuffle", "fast")


def _box(h: int, w: int, g: torch.Generator, lo: float = 0.12, hi: float = 0.3) -> tuple[int, int, int, int]:
    """A random (y, x, ph, pw) patch inside an h x w frame."""
    frac = lo + (hi - lo) * torch.rand((), generator=g).item()
    ph, pw = max(2, int(h * frac)), max(2, int(w * frac))
    y = int(torch.randint(0, h - ph + 1, (), generator=g))
    x = int(torch.randint(0, w - pw + 1, (), generator=g))
    return y, x, ph, pw


def _moving_box(clip: torch.Tensor, ph: int, pw: int) -> tuple[int, int]:
    """Top-left corner of the ph x pw region with the most frame-to-frame change (a moving object)."""
    change = torch.diff(clip, dim=0).abs().sum(dim=(0, 1))  # (H, W)
    pooled = F.avg_pool2d(change[None, None], (ph, pw), stride=1)[0, 0]
    k = int(pooled.argmax())
    return k // pooled.shape[1], k % pooled.shape[1]


def forge_clip(clip: torch.Tensor, kind: str, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One clip (T, C, H, W) -> (forged clip, (T,) bool mask of altered frames)."""
    t, _, h, w = clip.shape
    out = clip.clone()
    y, x, ph, pw = _box(h, w, g)
    altered = torch.ones(t, dtype=torch.bool)
    if kind == "cutpaste":
        sy, sx, _, _ = _box(h, w, g)
        sy, sx = min(sy, h - ph), min(sx, w - pw)
        out[:, :, y:y + ph, x:x + pw] = clip[:, :, sy:sy + ph, sx:sx + pw]
    elif kind == "cutout":
        out[:, :, y:y + ph, x:x + pw] = torch.rand((), generator=g).item() * 2 - 1
    elif kind == "frozen":
        t0 = int(torch.randint(0, max(1, t // 2), (), generator=g))
        out[t0:, :, y:y + ph, x:x + pw] = clip[t0, :, y:y + ph, x:x + pw]
        altered[: t0 + 1] = False
    elif kind == "shuffle":
        perm = torch.randperm(t, generator=g)
        out[:, :, y:y + ph, x:x + pw] = clip[perm][:, :, y:y + ph, x:x + pw]
        altered = perm != torch.arange(t)
    elif kind == "fast":  # an object (the most moving region, usually) crossing too fast
        y, x, ph, pw = _box(h, w, g, 0.08, 0.18)
        if torch.rand((), generator=g).item() < 0.75 and t > 1:
            y, x = _moving_box(clip, ph, pw)
        patch = clip[0, :, y:y + ph, x:x + pw]
        speed = max(2, int(w * (0.02 + 0.04 * torch.rand((), generator=g).item())))
        direction = 1 if torch.rand((), generator=g).item() < 0.5 else -1
        for k in range(1, t):
            xk = (x + direction * speed * k) % (w - pw + 1)
            out[k, :, y:y + ph, xk:xk + pw] = patch
        altered[0] = False
    else:
        raise ValueError(f"unknown forgery {kind!r}; one of {KINDS}")
    return out, altered


def forge(clips: torch.Tensor, g: torch.Generator, kinds: tuple[str, ...] = KINDS) -> tuple[torch.Tensor, torch.Tensor]:
    """A random forgery per clip: (B, T, C, H, W) -> (forged, (B, T) bool altered-frame mask)."""
    forged, masks = [], []
    for clip in clips:
        kind = kinds[int(torch.randint(0, len(kinds), (), generator=g))]
        f, m = forge_clip(clip, kind, g)
        forged.append(f)
        masks.append(m)
    return torch.stack(forged), torch.stack(masks).to(clips.device)
