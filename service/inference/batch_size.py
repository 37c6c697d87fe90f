"""How many windows the scorer puts in one forward pass when the settings leave it open: a rule, not a
measurement at start-up (which came out as 1, 2 or 8 on different starts of the same box).

On a GPU larger batches are nearly free: GPU_BATCH. On a CPU batching pays only while a window's activations stay
in the caches. Measured on a 2-core VM (docs/benchmarks.md): the 32x48 test model (0.08 GFLOP per window) scores
1.55x the frames/s in batches of 8 in the service, while the 64x96 demo stand-in (0.9 GFLOP per window) scores
0.93x and the shipped model (2.7 GFLOP) 0.97x, at several times the memory. So a CPU batches CPU_SMALL_BATCH
windows of a model whose window costs at most SMALL_WINDOW_GFLOP, and one window otherwise.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from model import OCRGANVideo

GPU_BATCH = 8
CPU_SMALL_BATCH = 8
SMALL_WINDOW_GFLOP = 0.5


def window_gflop(model: OCRGANVideo, stride: int) -> float:
    """GFLOP of scoring one window that publishes `stride` frames (counted on one pass of a blank window)."""
    cfg = model.cfg
    t = cfg.num_frames
    device = next(model.parameters()).device
    clip = torch.zeros(1, t, cfg.in_channels, *cfg.hw, device=device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.score(clip, slice(t - stride, t))
    return counter.get_total_flops() / 1e9


def batch_rule(device: torch.device, gflop: float) -> int:
    """Windows per forward pass: GPU_BATCH on a GPU; on a CPU, CPU_SMALL_BATCH for a model whose window costs at
    most SMALL_WINDOW_GFLOP, else 1."""
    if device.type != "cpu":
        return GPU_BATCH
    return CPU_SMALL_BATCH if gflop <= SMALL_WINDOW_GFLOP else 1
