"""The motion band: dense optical flow from the previous frame (OpenCV's DIS) on the model's input.

DIS with the FAST preset at its finest scale (0, full resolution) is what makes flow speed a strong
cue: OpenCV's default finest scale (2, a quarter of the resolution) loses small fast objects.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

FLOW_PRESET = "fast"  # DIS preset
FLOW_FINEST_SCALE = 0  # DIS finest pyramid level: 0 = the input's full resolution


def flow_length(flow: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """Length of 2-vectors (dx, dy) along `dim` of a float tensor. torch's vector norm reduces a dimension of
    two this way some 100 times slower than hypot on a CPU."""
    length = torch.hypot(flow.select(dim, 0), flow.select(dim, 1))
    return length.unsqueeze(dim) if keepdim else length


def resize_area(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> (h, w[, C]) by area averaging (no aliasing when shrinking)."""
    h, w = hw
    if frame.shape[:2] == (h, w):
        return frame
    shrink = frame.shape[0] >= h and frame.shape[1] >= w
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def luma(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W) grey or (H, W, 3) RGB -> (H, W) BT.601 luma."""
    if frame.ndim == 2:
        return frame
    if frame.shape[-1] == 1:
        return frame[..., 0]
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """Flow of each frame from the one before it, in pixels per frame: (H, W) uint8 -> (H, W, 2) float32
    (x, y). Holds the previous frame, so one estimator serves one sequence; the first frame of a
    sequence, or the first after `reset()`, has zero flow (as if the frame had been shown before)."""

    def __init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._dis.setFinestScale(FLOW_FINEST_SCALE)
        self._prev: np.ndarray | None = None

    def reset(self) -> None:
        self._prev = None

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        grey = np.ascontiguousarray(grey)
        if self._prev is None or self._prev.shape != grey.shape:
            flow = np.zeros((*grey.shape, 2), np.float32)
        else:
            flow = self._dis.calc(self._prev, grey, None)
        self._prev = grey
        return flow


def shrink_flow(flow: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, 2) flow in pixels per frame -> (H/factor, W/factor, 2): area-averaged, in pixels of the smaller size."""
    if factor == 1:
        return flow
    h, w = flow.shape[0] // factor, flow.shape[1] // factor
    return cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) / factor


def sequence_flow(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W) grey frames of one sequence -> (T, H, W, 2) flow, frame 0's zero."""
    est = FlowEstimator()
    return np.stack([est(f) for f in frames]) if len(frames) else np.zeros((0, *frames.shape[1:3], 2), np.float32)
