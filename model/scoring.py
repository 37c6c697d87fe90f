"""Per-frame anomaly scores and per-pixel anomaly maps from a clip and its reconstruction, and the rule that
combines the score's cues."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.motion import flow_length


def error_map(x: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over channels: (B, T, C, H, W) x 2 -> (B, T, H, W)."""
    return (x.float() - fake.float()).pow(2).mean(dim=2)


def flow_error_map(flow: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Length of the flow's deviation from its prediction, pixels per frame: (B, T, 2, H, W) x 2 -> (B, T, H, W)."""
    return flow_length(flow.float() - fake.float(), 2)


def _patch(err: torch.Tensor, patch: int) -> int:
    return max(1, min(patch, err.shape[-2], err.shape[-1]))


def pooled_error(err: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T, H, W) -> (B, T): the largest mean error over patch x patch regions (half-overlapping),
    so a small anomaly is not averaged away; patch 0 gives the plain frame mean."""
    if patch <= 0:
        return err.mean(dim=(-2, -1))
    p = _patch(err, patch)
    pooled = F.avg_pool2d(err.flatten(0, 1)[:, None], p, stride=max(1, p // 2))
    return pooled.amax(dim=(-3, -2, -1)).unflatten(0, err.shape[:2])


def local_error_map(err: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T, H, W) -> (B, T, H, W): the patch-mean error around every pixel (the map the score pools)."""
    if patch <= 1:
        return err
    p = _patch(err, patch)
    flat = err.flatten(0, 1)[:, None]
    lo, hi = (p - 1) // 2, p // 2
    pooled = F.avg_pool2d(F.pad(flat, (lo, hi, lo, hi), mode="replicate"), p, stride=1)
    return pooled[:, 0].unflatten(0, err.shape[:2])


def feature_distance(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between per-frame features: (B, T, nz) x 2 -> (B, T)."""
    return (f_real.float() - f_fake.float()).pow(2).mean(dim=-1)


CUES = ("app", "motion", "speed", "dir", "mem", "grey", "feat")  # appearance error, flow error, flow magnitude,
# direction surprise, distance to the memory of normal patches, the same by grey levels, feature distance
MAP_CUES = CUES[:-1]  # the cues read off a per-pixel map (all but the feature distance, one number a frame)


def combine_cues(cues: dict[str, torch.Tensor], weights: dict[str, float], scales: dict[str, float]) -> torch.Tensor:
    """Per-frame score: the largest weighted cue, each in units of its extreme on normal footage (so one cue at its
    extreme suffices, and one cue's everyday noise never adds to another's). `cues` maps names of CUES to per-frame
    values; `weights` and `scales` map the same names. A cue missing from `cues` or from `scales` (a scene's units
    leave out a memory of footage it does not resemble: model.scales.scene_scales), or of weight 0, is left out."""
    parts = [weights[k] * v.float() / scales[k] for k, v in cues.items()
             if v is not None and weights.get(k, 0) > 0 and k in scales]
    if not parts:
        raise ValueError("no cue has a positive weight")
    return torch.stack(parts).amax(dim=0)
