"""Whether, which way and how fast things move where in normal footage: a per-pixel prior over flow directions,
each optionally split into speed classes, learned from the motion band of the training clips, and the surprise of a
frame's motion under it (the `dir` cue).

The prior is of a pixel's motion class and of its standing still together: a pixel that moves as things seldom move
at that place is surprising, and so is one that moves at all where things seldom move. So a walker going the wrong
way is, and so is someone crossing where nobody walks, at whatever pace; one that moves as things usually move
there is not. With speed classes (octaves of speed above the moving threshold, `OCRGANConfig.speed_classes`), so is
a pixel moving at a speed the place never showed that way: a cyclist on a pavement beside a road, where a global
speed limit would have to allow the cars' speed everywhere, or a slow walker in a lane where things pass fast. The
prior is counted on a grid of cells (pooled with their neighbours, so a cell borrows from the ones around it) with a
pseudo-count per class, so a place where nothing moved in training gives every class the same surprise, as large as
a class never seen where things do move, rather than an infinite one."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from model.motion import flow_length

DIRECTIONS = 8  # direction bins of 45 degrees
DIRECTION_CELL = 8  # pixels of the working size per cell of the prior
PSEUDO_COUNT = 1.0  # pixels added to every cell's count of each motion class and of standing still
MIN_MOVING = 0.1  # pixels per frame: below this nothing counts as moving
NOISE_FACTOR = 4.0  # a pixel moves, rather than jitters, at this many times the median pixel's speed (noise_threshold)


def moving_threshold(speed: torch.Tensor, speeds: int = 1) -> float:
    """The speed (pixels per frame) above which a pixel counts as moving, from the speeds of normal footage, at
    least MIN_MOVING (flow noise on a still scene stays below it). By direction alone, a quarter of their 99th
    percentile: only clear motion has a clear direction. With speed classes, slow motion is a class of its own
    rather than something to leave out (on a street, walkers move at a fraction of the traffic's speed, which sets
    the 99th percentile), so only the flow noise of the still background is (noise_threshold)."""
    if speeds > 1:
        return noise_threshold(speed)
    sample = _sample(speed)
    return max(MIN_MOVING, 0.25 * float(torch.quantile(sample, 0.99))) if sample.numel() else MIN_MOVING


def noise_threshold(speed: torch.Tensor) -> float:
    """The speed above which a pixel moves rather than jitters, from the speeds of normal footage: NOISE_FACTOR times
    the median pixel's (the still background's flow noise), at least MIN_MOVING. Slow movers count."""
    sample = _sample(speed)
    return max(MIN_MOVING, NOISE_FACTOR * float(torch.quantile(sample, 0.5))) if sample.numel() else MIN_MOVING


def _sample(speed: torch.Tensor) -> torch.Tensor:
    flat = speed.flatten().float()
    return flat[:: max(1, flat.numel() // 1_000_000)]


def direction_bins(flow: torch.Tensor) -> torch.Tensor:
    """(..., 2, H, W) flow (x, y; image y down) -> (..., H, W) bin of its direction, counter-clockwise from +x."""
    angle = torch.atan2(-flow[..., 1, :, :].float(), flow[..., 0, :, :].float())
    return (angle / (2 * math.pi) * DIRECTIONS).round().long() % DIRECTIONS


def motion_classes(flow: torch.Tensor, threshold: float, speeds: int, dim: int) -> torch.Tensor:
    """(..., 2, H, W) flow (the vector along `dim`) -> (..., H, W) class of its motion: direction bin * speeds +
    speed class, the speed class the octave above `threshold` (0: up to twice it, ..., speeds - 1: beyond)."""
    if speeds == 1:
        return direction_bins(flow)
    base = max(threshold, 1e-6)
    octave = torch.log2(flow_length(flow.float(), dim).clamp(min=base) / base).floor().long()
    return direction_bins(flow) * speeds + octave.clamp(0, speeds - 1)


def direction_counts(flow: torch.Tensor, threshold: float, speeds: int = 1) -> torch.Tensor:
    """(N, 2, H, W) normal flow -> (DIRECTIONS * speeds + 1, H, W): moving pixels per motion class (motion_classes)
    in each pixel's cell and its neighbours (3x3 cells), and last the pixels there that stood still. Counts of
    several chunks of footage add up."""
    h, w = flow.shape[-2:]
    cell = max(1, min(DIRECTION_CELL, h, w))
    moving = flow_length(flow.float(), 1) > threshold
    bins = torch.where(moving, motion_classes(flow, threshold, speeds, 1), DIRECTIONS * speeds)
    per_cell = torch.stack([F.avg_pool2d((bins == k).float()[:, None], cell, ceil_mode=True).sum(0)[0]
                            for k in range(DIRECTIONS * speeds + 1)]) * cell * cell  # (classes + 1, gh, gw)
    pooled = F.avg_pool2d(per_cell[None], 3, 1, 1, count_include_pad=False)[0] * 9
    return F.interpolate(pooled[None], scale_factor=cell, mode="nearest")[0, :, :h, :w]


def log_prior(counts: torch.Tensor, pseudo: float = PSEUDO_COUNT) -> torch.Tensor:
    """(classes + 1, H, W) counts (direction_counts: the motion classes, then standing still) -> (classes, H, W)
    log-probability of a pixel moving in each motion class at each place: low where the class is rare among what
    moves there, and low where little moves at all."""
    p = (counts.float() + pseudo) / (counts.float().sum(0, keepdim=True) + pseudo * len(counts))
    return p[:-1].log()


def surprise_map(flow: torch.Tensor, prior: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, T, 2, H, W) flow -> (B, T, H, W): -log p(motion class) under `prior` (DIRECTIONS * speeds, H, W) where
    the pixel moves faster than `threshold`, 0 where it does not."""
    bins = motion_classes(flow, threshold, len(prior) // DIRECTIONS, 2)  # (B, T, H, W)
    logp = prior.to(flow.device, torch.float32)[None, None].expand(*bins.shape[:2], -1, -1, -1)
    surprise = -torch.gather(logp, 2, bins[:, :, None])[:, :, 0]
    return surprise * (flow_length(flow.float(), 2) > threshold)
