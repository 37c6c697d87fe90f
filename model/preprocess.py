"""Frames in (uint8, any size, grey or colour) -> model input. Defined once, used by every caller."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from model.config import OCRGANConfig

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, the luma every decoder produces


def input_spec(cfg: OCRGANConfig) -> dict:
    """What preprocess() does, stored with the weights so a caller can check it."""
    h, w = cfg.hw
    return {
        "height": h,
        "width": w,
        "channels": cfg.nc,
        "colour": "luma" if cfg.nc == 1 else "rgb",
        "input": "uint8 frames (T, H, W) grey or (T, H, W, 3) RGB, any size",
        "resize": "bilinear, antialiased",
        "range": [-1.0, 1.0],
    }


def preprocess(frames: np.ndarray | torch.Tensor, cfg: OCRGANConfig,
               device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 frames (T, H, W) grey or (T, H, W, 1|3) -> float (T, nc, h, w) in [-1, 1].

    Colour frames are RGB. A grey input given to a colour model is replicated; a colour input given
    to a luma model is converted with BT.601 weights.
    """
    x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    if x.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, 1|3), got {tuple(x.shape)}")
    x = x.to(device=device).permute(0, 3, 1, 2).float()  # (T, C, H, W)
    if cfg.nc == 1 and x.shape[1] == 3:
        weights = torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)
        x = (x * weights).sum(1, keepdim=True)
    elif cfg.nc == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != cfg.hw:
        x = F.interpolate(x, size=cfg.hw, mode="bilinear", antialias=True, align_corners=False)
    return (x / 127.5 - 1.0).clamp_(-1.0, 1.0)

