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
a class never seen where things do move, rather than an infinite one.

With a motion memory (`OCRGANConfig.direction_memory`), the cue reads patches instead of pixels: each patch is
described by the share of its pixels in each motion class and by its place in the frame (motion_patches), and its
surprise is its distance to the nearest of a coreset of the training footage's patches (model.memory). A patch of
walkers going the usual way where walkers go is near one; the same walkers on the lawn, a cyclist among them or a
crowd turning back is not. Off by default: on Ped2 the model's motion memory ranked test frames at 0.864 alone and
did not raise the score (docs/results.md, "A memory of how things move where"), where the same kind of memory of
the raw flow with a fixed moving threshold reads 0.958-0.970 (benchmarks/motion_memory.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from model.motion import flow_length

DIRECTIONS = 8  # direction bins of 45 degrees (direction_bins reads them off the flow's components for 8)
AXIS_EDGE = math.tan(math.pi / DIRECTIONS)  # |y| / |x| on the edge between an axis's bin and a diagonal's
DIRECTION_CELL = 8  # pixels of the working size per cell of the prior
PSEUDO_COUNT = 1.0  # pixels added to every cell's count of each motion class and of standing still
MIN_MOVING = 0.1  # pixels per frame: below this nothing counts as moving
PLACE_WEIGHT = 1.0  # of a patch's place (row and column, 0 to 1) beside the shares of its motion classes: crossing
# the whole frame counts as much as the whole patch changing its motion
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
    """(..., 2, H, W) flow (x, y; image y down) -> (..., H, W) bin of its direction, counter-clockwise from +x: its
    angle rounded to the nearest of the 8 bins, 0 where nothing moves. Read off the components rather than the angle:
    within 22.5 degrees of an axis (|y| at most tan(22.5 degrees) |x|, or the other way round) it is that axis's bin,
    else the diagonal of the quadrant its signs give. The same bins as rounding atan2 (but on an edge between two,
    to float rounding), in comparisons and products only: ONNX Runtime computes atan2 in a chain of selections
    (Where) six times as slow, torch about as fast (docs/benchmarks.md)."""
    x, y = flow[..., 0, :, :].float(), -flow[..., 1, :, :].float()  # y up
    ax, ay = x.abs(), y.abs()
    along_x = (ay <= AXIS_EDGE * ax).float()  # bin 0 or 4 (and where nothing moves)
    along_y = (ax < AXIS_EDGE * ay).float()  # bin 2 or 6
    left, down = (x < 0).float(), (y < 0).float()
    diagonal = 1 + 2 * left + down * (6 - 4 * left)  # 1 up right, 3 up left, 5 down left, 7 down right
    return (along_x * 4 * left + along_y * (2 + 4 * down) + (1 - along_x - along_y) * diagonal).long()


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


def motion_patches(flow: torch.Tensor, threshold: float, speeds: int, patch: int) -> torch.Tensor:
    """(N, 2, H, W) flow -> (N, h', w', DIRECTIONS * speeds + 2): for each patch of `patch` pixels (stride half of
    it, as the score pools its cues), the share of its pixels moving faster than `threshold` in each motion class
    (motion_classes), then its place in the frame (row, column from 0 to 1) times PLACE_WEIGHT."""
    n, _, h, w = flow.shape
    p, stride = _patch_pooling(h, w, patch)
    classes = DIRECTIONS * speeds
    moving = flow_length(flow.float(), 1) > threshold
    bins = torch.where(moving, motion_classes(flow, threshold, speeds, 1), classes)
    onehot = flow.new_zeros(n, classes + 1, h, w, dtype=torch.float32).scatter_(1, bins[:, None], 1.0)
    shares = F.avg_pool2d(onehot[:, :classes], p, stride=stride)
    gh, gw = shares.shape[-2:]
    rows = torch.linspace(0, 1, gh, device=flow.device)
    cols = torch.linspace(0, 1, gw, device=flow.device)
    place = PLACE_WEIGHT * torch.stack(torch.meshgrid(rows, cols, indexing="ij"))
    return torch.cat([shares, place.expand(n, 2, gh, gw)], 1).permute(0, 2, 3, 1)


def _patch_pooling(h: int, w: int, patch: int) -> tuple[int, int]:
    """The size and stride of motion_patches' patches on an h x w flow."""
    p = max(1, min(patch, h, w))
    return p, max(1, p // 2)


def motion_patch_count(h: int, w: int, patch: int) -> int:
    """How many patches motion_patches describes in one h x w frame."""
    p, stride = _patch_pooling(h, w, patch)
    return ((h - p) // stride + 1) * ((w - p) // stride + 1)


def motion_width(speeds: int) -> int:
    """The length of motion_patches' vectors."""
    return DIRECTIONS * speeds + 2
