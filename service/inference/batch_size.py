"""How many windows the scorer puts in one forward pass when the settings leave it open: a rule, not a
measurement at start-up (which came out as 1, 2 or 8 on different starts of the same box).

On a GPU larger batches are nearly free: GPU_BATCH. On a CPU batching pays only while a window's activations stay
in the caches. Measured on a 2-core VM (docs/benchmarks.md): the 32x48 test model (0.08 GFLOP per window, 0.07 of it
in its convolutions and linear layers, which window_gflop counts) scores 1.55x the frames/s in batches of 8 in the
service, while the 64x96 demo stand-in (0.9 GFLOP per window, 0.9 counted) scores 0.93x and the shipped model (2.6
GFLOP, 1.7 counted) 0.97x, at several times the memory. So a CPU batches CPU_SMALL_BATCH
windows of a model whose window costs at most SMALL_WINDOW_GFLOP, and one window otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from model import OCRGANVideo

GPU_BATCH = 8
CPU_SMALL_BATCH = 8
SMALL_WINDOW_GFLOP = 0.5


def window_gflop(model: OCRGANVideo, stride: int) -> float:
    """GFLOP of the convolutions and linear layers in scoring one window that publishes `stride` frames (counted
    on one pass of a blank window): the bulk of its work (1.7 of the shipped model's 2.6 GFLOP; its memory's search
    and the attention's products are the rest). Counted with forward hooks: torch's own FLOP counter imports some
    800 modules on its first use, 67 MB of the service's memory for good."""
    total = 0

    def conv(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        taps = math.prod(mod.kernel_size) * 2
        if isinstance(mod, nn.ConvTranspose2d):  # each input value meets out_channels/groups kernels
            total += taps * inputs[0].numel() * (mod.out_channels // mod.groups)
        else:  # each output value sums in_channels/groups kernels
            total += taps * out.numel() * (mod.in_channels // mod.groups)

    def linear(mod: nn.Linear, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += 2 * mod.in_features * out.numel()

    hooks = [m.register_forward_hook(conv) for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    hooks += [m.register_forward_hook(linear) for m in model.modules() if isinstance(m, nn.Linear)]
    cfg = model.cfg
    t = cfg.num_frames
    device = next(model.parameters()).device
    clip = torch.zeros(1, t, cfg.in_channels, *cfg.hw, device=device)
    try:
        with torch.inference_mode():
            model.score(clip, slice(t - stride, t))
    finally:
        for h in hooks:
            h.remove()
    return total / 1e9


def batch_rule(device: torch.device, gflop: float) -> int:
    """Windows per forward pass: GPU_BATCH on a GPU; on a CPU, CPU_SMALL_BATCH for a model whose window costs at
    most SMALL_WINDOW_GFLOP, else 1."""
    if device.type != "cpu":
        return GPU_BATCH
    return CPU_SMALL_BATCH if gflop <= SMALL_WINDOW_GFLOP else 1
