"""Trivial detectors on the very frames the model sees: frame difference and distance to the mean
training frame, pooled like the model's score and as a plain frame mean."""

from __future__ import annotations

import torch

from model.scoring import pooled_error


def frame_difference(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, H, W) -> (N,) pooled |x_t - x_{t-1}|^2; the first frame is compared with itself, as the
    scoring rule repeats it before the start."""
    prev = torch.cat([frames[:1], frames[:-1]])
    err = (frames.float() - prev.float()).pow(2).mean(1)  # (N, H, W)
    return pooled_error(err[None], patch)[0]


def mean_frame_distance(frames: torch.Tensor, mean_frame: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, H, W) -> (N,) pooled |x_t - mean|^2."""
    err = (frames.float() - mean_frame.float()).pow(2).mean(1)
    return pooled_error(err[None], patch)[0]


def baseline_scores(frames: torch.Tensor, mean_frame: torch.Tensor | None, patch: int) -> dict[str, torch.Tensor]:
    """Each baseline's per-frame scores; the mean-frame ones only when a mean training frame is known."""
    out = {"frame_difference": frame_difference(frames, patch), "frame_difference_mean": frame_difference(frames, 0)}
    if mean_frame is not None:
        out["mean_frame"] = mean_frame_distance(frames, mean_frame, patch)
        out["mean_frame_mean"] = mean_frame_distance(frames, mean_frame, 0)
    return out
