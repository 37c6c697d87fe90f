"""How many windows the scorer puts in one forward pass when the settings leave it open.

On a GPU larger batches are nearly free, so the answer is 8. On a CPU it depends on the model: a
small model gains from batching (better use of the cores), a large one loses (its activations no
longer fit in the caches; the shipped 128x192 model scores 0.7x the frames/s at batch 8 that it
scores at batch 1 on a 2-core machine). So on a CPU the batch is measured on the loaded model at
start-up: candidates are tried in increasing order and the search stops at the first one slower
than the best so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from model import OCRGANVideo

CANDIDATES = (1, 2, 4, 8)
GPU_BATCH = 8


def measure_batch(model: OCRGANVideo, stride: int, candidates: Sequence[int] = CANDIDATES, repeats: int = 2,
                  timer: Callable[[], float] = time.perf_counter) -> tuple[int, dict[int, float]]:
    """The candidate scoring the most windows per second on this machine, and the rates measured."""
    cfg = model.cfg
    t = cfg.num_frames
    positions = slice(t - stride, t)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(0)
    rates: dict[int, float] = {}
    best = candidates[0]
    for b in candidates:
        clip = (torch.rand(b, t, cfg.in_channels, *cfg.hw, generator=gen) * 2 - 1).to(device)
        with torch.inference_mode():
            model.score(clip, positions)  # warm-up: allocations, oneDNN primitives
            start = timer()
            for _ in range(repeats):
                model.score(clip, positions)
            rates[b] = b * repeats / max(timer() - start, 1e-9)
        if rates[b] > rates[best]:
            best = b
        elif b != best:
            break
    return best, rates
