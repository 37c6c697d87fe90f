"""Which way things move where, in normal footage: a per-pixel prior over flow directions, learned from the motion
band of the training clips, and the surprise of a frame's motion under it (the `dir` cue).

A pixel that moves in a direction the footage rarely showed at that place (a walker going the wrong way, someone
crossing where nobody walks) is surprising; one that moves as things usually move there is not, however fast. The
prior is counted on a grid of cells (pooled with their neighbours, so a cell borrows from the ones around it) with a
pseudo-count per direction, so a place where nothing moved in training gives every direction the same, moderate
surprise rather than an infinite one."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from model.motion import flow_length

DIRECTIONS = 8  # direction bins of 45 degrees
DIRECTION_CELL = 8  # pixels of the working size per cell of the prior
PSEUDO_COUNT = 1.0  # moving pixels per direction added to every cell's counts
MIN_MOVING = 0.1  # pixels per frame: below this nothing counts as moving


def moving_threshold(speed: torch.Tensor) -> float:
    """The speed (pixels per frame) above which a pixel counts as moving, from the speeds of normal footage: a
    quarter of their 99th percentile, at least MIN_MOVING (flow noise on a still scene stays below it)."""
    flat = speed.flatten().float()
    sample = flat[:: max(1, flat.numel() // 1_000_000)]
    return max(MIN_MOVING, 0.25 * float(torch.quantile(sample, 0.99))) if sample.numel() else MIN_MOVING


def direction_bins(flow: torch.Tensor) -> torch.Tensor:
    """(..., 2, H, W) flow (x, y; image y down) -> (..., H, W) bin of its direction, counter-clockwise from +x."""
    angle = torch.atan2(-flow[..., 1, :, :].float(), flow[..., 0, :, :].float())
    return (angle / (2 * math.pi) * DIRECTIONS).round().long() % DIRECTIONS


def direction_counts(flow: torch.Tensor, threshold: float) -> torch.Tensor:
    """(N, 2, H, W) normal flow -> (DIRECTIONS, H, W): moving pixels per direction in each pixel's cell and its
    neighbours (3x3 cells). Counts of several chunks of footage add up."""
    h, w = flow.shape[-2:]
    cell = max(1, min(DIRECTION_CELL, h, w))
    moving = flow_length(flow.float(), 1) > threshold
    bins = direction_bins(flow)
    per_cell = torch.stack([F.avg_pool2d(((bins == k) & moving).float()[:, None], cell, ceil_mode=True).sum(0)[0]
                            for k in range(DIRECTIONS)]) * cell * cell  # (D, gh, gw)
    pooled = F.avg_pool2d(per_cell[None], 3, 1, 1, count_include_pad=False)[0] * 9
    return F.interpolate(pooled[None], scale_factor=cell, mode="nearest")[0, :, :h, :w]


def log_prior(counts: torch.Tensor, pseudo: float = PSEUDO_COUNT) -> torch.Tensor:
    """(DIRECTIONS, H, W) counts -> log-probability of each direction at each pixel."""
    p = (counts.float() + pseudo) / (counts.float().sum(0, keepdim=True) + pseudo * DIRECTIONS)
    return p.log()


def surprise_map(flow: torch.Tensor, prior: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, T, 2, H, W) flow -> (B, T, H, W): -log p(direction) under `prior` (DIRECTIONS, H, W) where the pixel
    moves faster than `threshold`, 0 where it does not."""
    bins = direction_bins(flow)  # (B, T, H, W)
    logp = prior.to(flow.device, torch.float32)[None, None].expand(*bins.shape[:2], -1, -1, -1)
    surprise = -torch.gather(logp, 2, bins[:, :, None])[:, :, 0]
    return surprise * (flow_length(flow.float(), 2) > threshold)
