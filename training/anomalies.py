"""Synthetic anomalies for model selection, placed where things move in the normal footage (one kind where they
seldom do) and shaped by how they move there: an object too fast for its place (a cyclist on a pavement beside a
road is fast for the pavement, however slow beside the traffic), one going the wrong way, a foreign patch held
still, an object of unusual size appearing and moving at a normal speed, and an object of the scene walking at a
normal pace where things seldom move (someone crossing a lawn, a person on the tracks). Objects are cut out of other
normal footage along their silhouettes, so a forgery adds an object and no pasted rectangle.

They are made on uint8 working-size frames; the motion band of a forged window is then computed from
the forged frames by the same optical flow as everything else, so a forgery looks to the model exactly
as a real event of its kind would.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from model.directions import DIRECTIONS, direction_bins, moving_threshold, noise_threshold

KINDS = ("fast", "wrong_way", "still", "appear", "misplaced")
QUIET_SHARE = 0.25  # a cell where things move at most this share as often as in the busiest is where they seldom do
MIN_CELL_MOVING = 50  # moving pixels (over the footage) a cell needs for a speed of its own
CELL_SPEED_QUANTILE = 0.9  # of the speeds of what moves in a cell: its speed, that of the bodies that move there
# rather than of their slow edges and limbs (their mean on Ped2 was 0.17 pixels a frame at 64x96, below the walkers'
# pace, so an object forged at 1.5-3 times it was often no faster than a walker)


@dataclass
class MotionPrior:
    """Where and how things move in normal footage, per cell of a coarse grid, learned from its flow."""

    cell: int  # cell size in pixels
    moving: np.ndarray  # (gh, gw) share of frames in which something moves in the cell
    directions: np.ndarray  # (gh, gw, DIRECTIONS) share of moving pixels per direction bin
    speed: float  # median speed of moving pixels (pixels per frame)
    threshold: float  # speed above which a pixel counts as moving
    speeds: np.ndarray  # (gh, gw) speed of what moves in the cell (CELL_SPEED_QUANTILE; `speed` where little moves)

    @classmethod
    def from_flow(cls, flow: torch.Tensor, cell: int = 16, max_frames: int = 2000) -> MotionPrior:
        """flow: (N, 2, h, w) of normal footage."""
        if len(flow) > max_frames:
            flow = flow[torch.linspace(0, len(flow) - 1, max_frames).long()]
        flow = flow.float()
        speed = flow.norm(dim=1)  # (N, h, w)
        threshold = moving_threshold(speed)
        moving = speed > threshold
        bins = direction_bins(flow)
        hist = torch.stack([F.avg_pool2d(((bins == k) & moving).float()[:, None], cell).sum(0)[0]
                            for k in range(DIRECTIONS)], dim=-1)  # (gh, gw, D)
        total = hist.sum(-1, keepdim=True)
        directions = torch.where(total > 0, hist / total.clamp(min=1e-9), torch.full_like(hist, 1 / DIRECTIONS))
        share = F.avg_pool2d(moving.float()[:, None], cell).gt(0.05).float().mean(0)[0]  # (gh, gw)
        speeds = speed[moving]
        median = float(speeds[:: max(1, len(speeds) // 100_000)].median()) if len(speeds) else 1.0
        # each cell's speed: the fast end of what moves there (CELL_SPEED_QUANTILE of its moving pixels' speeds),
        # slow movers included (walkers beside traffic fall below `threshold`, which the traffic sets)
        movers = speed > noise_threshold(speed)
        local = torch.full(share.shape, median)
        for cy, cx in itertools.product(range(share.shape[0]), range(share.shape[1])):
            block = speed[:, cy * cell:(cy + 1) * cell, cx * cell:(cx + 1) * cell]
            values = block[movers[:, cy * cell:(cy + 1) * cell, cx * cell:(cx + 1) * cell]]
            if len(values) >= MIN_CELL_MOVING:
                local[cy, cx] = torch.quantile(values[:: max(1, len(values) // 100_000)], CELL_SPEED_QUANTILE)
        return cls(cell, share.numpy(), directions.numpy(), median, threshold, local.numpy())

    def scaled(self, factor: int) -> MotionPrior:
        """The same prior for frames `factor` times larger."""
        return MotionPrior(self.cell * factor, self.moving, self.directions, self.speed * factor,
                           self.threshold * factor, self.speeds * factor)

    def pick_cell(self, g: torch.Generator) -> tuple[int, int]:
        """A cell drawn in proportion to how often something moves there (uniformly if nothing ever does)."""
        w = self.moving.flatten() + 1e-3
        k = int(torch.multinomial(torch.from_numpy(w / w.sum()).float(), 1, generator=g))
        return divmod(k, self.moving.shape[1])

    def pick_quiet_cell(self, g: torch.Generator) -> tuple[int, int]:
        """A cell drawn uniformly among those where things seldom move (QUIET_SHARE of the busiest cell's share of
        frames, or the quietest cells where motion is everywhere)."""
        quiet = np.flatnonzero(self.moving.flatten() <= max(QUIET_SHARE * self.moving.max(), self.moving.min()))
        return divmod(int(quiet[int(torch.randint(len(quiet), (), generator=g))]), self.moving.shape[1])

    def likely_direction(self, cy: int, cx: int, g: torch.Generator) -> float:
        """An angle (radians) drawn from the cell's normal directions."""
        p = torch.from_numpy(self.directions[cy, cx]).float() + 1e-6
        return int(torch.multinomial(p / p.sum(), 1, generator=g)) * 2 * np.pi / DIRECTIONS

    def unlikely_direction(self, cy: int, cx: int, g: torch.Generator) -> float:
        """An angle among the cell's rarest directions (ties drawn at random)."""
        p = self.directions[cy, cx]
        rare = np.flatnonzero(p <= p.min() + 1e-6)
        return float(rare[int(torch.randint(len(rare), (), generator=g))]) * 2 * np.pi / DIRECTIONS


def _size(h: int, w: int, g: torch.Generator) -> tuple[int, int]:
    frac = 0.1 + 0.08 * float(torch.rand((), generator=g))
    return max(4, int(h * frac)), max(4, int(h * frac * 0.8))


def _moving_patch(frames: np.ndarray, ph: int, pw: int) -> tuple[int, int]:
    """Top-left corner of the ph x pw region of the most frame-to-frame change (an object, usually)."""
    change = np.abs(np.diff(frames.astype(np.int16), axis=0)).sum(0).astype(np.float32)
    pooled = F.avg_pool2d(torch.from_numpy(change)[None, None], (ph, pw), stride=1)[0, 0]
    k = int(pooled.argmax())
    return divmod(k, pooled.shape[1])


def _silhouette(frames: np.ndarray, oy: int, ox: int, ph: int, pw: int, at: int) -> np.ndarray:
    """(ph, pw) float in [0, 1]: how much each pixel of the region belongs to what differs from its background in
    frame `at`, the background being the region's median over the window (a moving object is seldom in the same
    place); feathered at the edges, so a pasted object carries no seam or halo of the ground it stood on."""
    region = frames[:, oy:oy + ph, ox:ox + pw].astype(np.int16)
    background = np.median(region, axis=0)
    diff = np.abs(region[at] - background)
    diff = diff.max(-1) if diff.ndim == 3 else diff
    mask = (diff > 12).astype(np.float32)
    if not mask.any():
        return np.ones((ph, pw), np.float32)
    return cv2.GaussianBlur(mask, (3, 3), 0)


def _paste_track(frames: np.ndarray, patch: np.ndarray, start: tuple[float, float], angle: float, speed: float,
                 first: int, mask: np.ndarray | None = None) -> None:
    """Paste `patch` (blended by its `mask`, an opacity in [0, 1], when given) at `start` (y, x) in frame `first`,
    moving `speed` pixels per frame along `angle`; it bounces off the frame's edges so it stays in view."""
    t, h, w = frames.shape[:3]
    ph, pw = patch.shape[:2]
    y, x = start
    vy, vx = -np.sin(angle) * speed, np.cos(angle) * speed
    for k in range(first, t):
        iy, ix = round(y), round(x)
        if mask is None:
            frames[k, iy:iy + ph, ix:ix + pw] = patch
        else:
            a = mask[..., None] if patch.ndim == 3 else mask
            under = frames[k, iy:iy + ph, ix:ix + pw].astype(np.float32)
            frames[k, iy:iy + ph, ix:ix + pw] = np.round(a * patch + (1 - a) * under).astype(frames.dtype)
        y, x = y + vy, x + vx
        if not 0 <= y <= h - ph:
            vy, y = -vy, min(max(y, 0), h - ph)
        if not 0 <= x <= w - pw:
            vx, x = -vx, min(max(x, 0), w - pw)


def forge_window(frames: np.ndarray, kind: str, prior: MotionPrior, donor: np.ndarray, published: int,
                 g: torch.Generator) -> np.ndarray:
    """A forged copy of uint8 frames (T, h, w[, 3]) whose last `published` frames show an anomaly of `kind`.
    `donor` (T', h, w[, 3]) is a window of other normal footage: the objects and patches pasted come from it,
    so a forgery adds one object and leaves the scene's own as they were."""
    out = frames.copy()
    t, h, w = frames.shape[:3]
    ph, pw = _size(h, w, g)
    cy, cx = prior.pick_quiet_cell(g) if kind == "misplaced" else prior.pick_cell(g)
    y = min(max(0, cy * prior.cell + prior.cell // 2 - ph // 2), h - ph)
    x = min(max(0, cx * prior.cell + prior.cell // 2 - pw // 2), w - pw)
    first = max(0, t - published - 2)  # the event is already under way when the published frames begin
    if kind in ("fast", "wrong_way", "misplaced"):  # an object of the scene, moving too fast, where nothing goes that
        # way, or where things seldom move at all
        oy, ox = _moving_patch(donor, ph, pw)
        at = len(donor) - 1
        patch = donor[at, oy:oy + ph, ox:ox + pw].copy()
        mask = _silhouette(donor, oy, ox, ph, pw, at)  # the object, not the ground it stood on
        if kind == "fast":
            # as a cyclist among walkers: faster than what moves at that place, whatever moves faster elsewhere
            speed = float(prior.speeds[cy, cx]) * (1.5 + 1.5 * float(torch.rand((), generator=g)))
            angle = prior.likely_direction(cy, cx, g)
        elif kind == "wrong_way":
            speed = prior.speed * (0.8 + 0.7 * float(torch.rand((), generator=g)))
            angle = prior.unlikely_direction(cy, cx, g)
        else:  # at a normal pace, whichever way: what is wrong is where
            speed = prior.speed * (0.5 + 0.5 * float(torch.rand((), generator=g)))
            angle = 2 * np.pi * float(torch.rand((), generator=g))
        _paste_track(out, patch, (y, x), angle, speed, first, mask)
    elif kind == "still":  # a foreign patch left where things normally move
        sy = int(torch.randint(0, h - ph + 1, (), generator=g))
        sx = int(torch.randint(0, w - pw + 1, (), generator=g))
        out[first:, y:y + ph, x:x + pw] = donor[-1, sy:sy + ph, sx:sx + pw][::-1]  # upside down: not of this place
    elif kind == "appear":  # an object of unusual size (a vehicle among walkers) moving at a normal speed
        sy, sx = _moving_patch(donor, ph, pw)
        at = len(donor) - 1
        scale = 1.6 + 0.6 * float(torch.rand((), generator=g))
        mask = _silhouette(donor, sy, sx, ph, pw, at)
        big_h, big_w = min(h, round(ph * scale)), min(w, round(pw * scale))
        patch = cv2.resize(donor[at, sy:sy + ph, sx:sx + pw], (big_w, big_h), interpolation=cv2.INTER_LINEAR)
        mask = np.clip(cv2.resize(mask, (big_w, big_h), interpolation=cv2.INTER_LINEAR), 0, 1)
        y, x = min(y, h - big_h), min(x, w - big_w)
        _paste_track(out, patch, (y, x), prior.likely_direction(cy, cx, g), prior.speed, first, mask)
    else:
        raise ValueError(f"unknown synthetic anomaly {kind!r}; one of {KINDS}")
    return out
