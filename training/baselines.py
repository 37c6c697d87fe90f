"""Detectors that learn nothing, on the very frames the model sees (uint8, shrunk to the working size by
area averaging): frame difference, distance to the mean training frame, and optical-flow speed, raw and less
the camera's own motion (`model.motion.Steadier`). Each is pooled like the model's score (the largest mean
over half-overlapping patches) and, for the first two, also as a plain frame mean."""

from __future__ import annotations

import numpy as np
import torch

from model.motion import Steadier, sequence_flow
from model.scoring import pooled_error

FLOW_HEIGHT = 128  # flow speed runs on frames this high (aspect kept): the recipe whose figures are known
FLOW_PATCH = 16  # flow magnitude averaged over 16x16 patches (stride 8), max per frame


def _float(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, h, w[, 3]) -> float (N, C, h, w) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1
    return x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)


def frame_difference(frames: np.ndarray, patch: int) -> torch.Tensor:
    """uint8 (N, h, w[, 3]) -> (N,) pooled |x_t - x_{t-1}|^2; the first frame is compared with itself, as the
    scoring rule repeats it before the start."""
    x = _float(frames)
    prev = torch.cat([x[:1], x[:-1]])
    return pooled_error((x - prev).pow(2).mean(1)[None], patch)[0]


def mean_frame_distance(frames: np.ndarray, mean_frame: torch.Tensor, patch: int) -> torch.Tensor:
    """uint8 (N, h, w[, 3]) -> (N,) pooled |x_t - mean|^2; `mean_frame` (C, h, w) in [-1, 1]."""
    return pooled_error((_float(frames) - mean_frame).pow(2).mean(1)[None], patch)[0]


def flow_size(hw: tuple[int, int]) -> tuple[int, int]:
    """FLOW_HEIGHT high, the width keeping the aspect (even)."""
    h, w = hw
    return FLOW_HEIGHT, max(2, round(w * FLOW_HEIGHT / h / 2) * 2)


def _pooled_speed(flow: np.ndarray) -> torch.Tensor:
    speed = np.linalg.norm(flow, axis=-1)  # (N, H, W) pixels per frame
    return pooled_error(torch.from_numpy(speed)[None], FLOW_PATCH)[0]


def flow_speeds(grey: np.ndarray) -> dict[str, torch.Tensor]:
    """uint8 (N, FLOW_HEIGHT, w) luma -> {"flow_speed": (N,), "flow_speed_steady": (N,)}: DIS flow (fast preset,
    finest scale 0) from the previous frame, its magnitude averaged over 16x16 patches (stride 8), the largest per
    frame; the second of the same flow less the camera's own motion."""
    if len(grey) and grey.shape[1] != FLOW_HEIGHT:
        raise ValueError(f"flow speed runs on frames {FLOW_HEIGHT} pixels high, got {grey.shape[1]}")
    flow = sequence_flow(grey)
    steadier = Steadier()
    steady = np.stack([steadier(f, grey[max(i - 1, 0)], g) for i, (f, g) in enumerate(zip(flow, grey, strict=True))]
                      ) if len(flow) else flow
    return {"flow_speed": _pooled_speed(flow), "flow_speed_steady": _pooled_speed(steady)}


def flow_speed(grey: np.ndarray) -> torch.Tensor:
    """uint8 (N, FLOW_HEIGHT, w) luma -> (N,): the raw flow speed of `flow_speeds`."""
    return flow_speeds(grey)["flow_speed"]


def baseline_scores(frames: np.ndarray, flow_frames: np.ndarray, mean_frame: torch.Tensor | None,
                    patch: int) -> dict[str, torch.Tensor]:
    """Each baseline's per-frame scores of one sequence: uint8 working-size frames (N, h, w[, 3]) and the same
    frames FLOW_HEIGHT high in luma (N, FLOW_HEIGHT, w'); the mean-frame ones only when a mean training frame
    is known."""
    out = {**flow_speeds(flow_frames), "frame_difference": frame_difference(frames, patch),
           "frame_difference_mean": frame_difference(frames, 0)}
    if mean_frame is not None:
        out["mean_frame"] = mean_frame_distance(frames, mean_frame, patch)
        out["mean_frame_mean"] = mean_frame_distance(frames, mean_frame, 0)
    return out
