"""The motion band: dense optical flow from the previous frame (OpenCV's DIS) on the model's input.

DIS with the FAST preset at its finest scale (0, full resolution) is what makes flow speed a strong
cue: OpenCV's default finest scale (2, a quarter of the resolution) loses small fast objects.

A camera on a pole sways, and a sway moves every pixel: raw flow then reads the whole frame as moving. With
`steady=True` the estimator removes the camera's own motion, an affine field fitted to the flow robustly (the
background's motion, as long as the background is most of the frame), so what remains is what moves in the scene.

Where a frame is flat (sky, a wall, a smooth road) DIS has nothing to match, and its flow there is noise as long as
a slow walker's step. With `gated=True` the flow counts only where the frame changed (`changed`): nothing moves
where nothing changed, so the noise is gone and a slow mover stands out from the still scene.
"""

from __future__ import annotations

import functools

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


CAMERA_GRID = 4  # the camera's motion is fitted to the flow at every this many pixels
CAMERA_INLIER = 3.0  # a sample is background while its residual is within this many times the median residual
CAMERA_MIN_INLIER = 0.25  # ... or within this many pixels per frame
CAMERA_STILL = 0.1  # a fitted motion that moves no pixel this far (pixels per frame) is a still camera's noise
CAMERA_EXPLAINS = 2.0  # ... and one that does not bring this many times more of the previous frame's edges closer to
# the frame than it takes further (most edges are the scene's, not the movers') is the optical flow's guess, not the
# camera's motion
CAMERA_KEEPS = 1.5  # ... or this many times, for a camera already seen moving the frame before (a sway lasts: the
# frames of a small one bear it out less clearly, one by one)
CAMERA_GREY = 0.5  # grey levels by which an edge pixel must come closer (or go further) to count for that check
CAMERA_EDGES = 75  # percentile of the gradient above which a pixel is an edge for that check


@functools.lru_cache(maxsize=8)
def _affine_basis(h: int, w: int, step: int = 1) -> np.ndarray:
    """(n, 3) rows (1, x, y) at every `step`-th pixel, x and y centred and in units of the frame's size (read-only,
    one per size)."""
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    basis = np.stack([np.ones(xs.size), (xs.ravel() - w / 2) / w, (ys.ravel() - h / 2) / h], 1)
    basis.flags.writeable = False
    return basis


def camera_motion(flow: np.ndarray, prev: np.ndarray, cur: np.ndarray, times: float = CAMERA_EXPLAINS,
                  rounds: int = 3) -> np.ndarray:
    """(H, W, 2) flow from the uint8 frame `prev` to `cur` -> (3, 2) affine parameters of the camera's own motion,
    (dx, dy) = (1, x, y) @ params in the units of `_affine_basis`: started from the median flow, refitted by least
    squares on the samples that it explains (residual within CAMERA_INLIER times the median residual, or
    CAMERA_MIN_INLIER px), so movers in the scene are left out while they cover less than half of it. Zero unless
    the camera evidently moved:
    - the motion moves some pixel CAMERA_STILL or further (subtracting a still camera's noise cost flow speed
      0.003 of AUC on still Ped2 footage), and
    - warping `prev` by it brings the frame's edges closer to `cur` (`_explains`: `times` as many closer as
      further; a `Steadier` asks CAMERA_KEEPS of a camera it saw moving the frame before). Optical flow fills a region
      without texture, or with stripes along the motion, with the motion around it: walkers crossing such a
      ground read as the whole ground moving with them, which no warp of the ground confirms."""
    h, w = flow.shape[:2]
    step = CAMERA_GRID
    basis = _affine_basis(h, w, step)
    samples = flow[step // 2::step, step // 2::step].reshape(-1, 2).astype(np.float64)
    params = np.zeros((3, 2))
    params[0] = np.median(samples, axis=0)
    for _ in range(rounds):
        residual = np.hypot(*(samples - basis @ params).T)
        inliers = residual <= max(CAMERA_MIN_INLIER, CAMERA_INLIER * float(np.median(residual)))
        if inliers.sum() < 3 * basis.shape[1]:
            break
        params = np.linalg.lstsq(basis[inliers], samples[inliers], rcond=None)[0]
    if _reach(params) < CAMERA_STILL or not _explains(params, prev, cur, times):
        return np.zeros_like(params)
    return params


def _reach(params: np.ndarray) -> float:
    """The largest displacement of any pixel along either axis under the affine motion `params`."""
    return float((np.abs(params[0]) + 0.5 * np.abs(params[1:]).sum(axis=0)).max())


def _field(params: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w, 2) float32 displacement of every pixel under the affine motion `params`."""
    x = ((np.arange(w) - w / 2) / w)[None, :, None]
    y = ((np.arange(h) - h / 2) / h)[:, None, None]
    return (params[0] + x * params[1] + y * params[2]).astype(np.float32)


def _moved(prev: np.ndarray, params: np.ndarray) -> np.ndarray:
    """`prev` as the camera sees it after the affine motion `params`: each pixel x shows prev at x - field(x)."""
    h, w = prev.shape
    (ax, ay), (bx, by), (cx, cy) = params  # displacement = a + b (x - w/2) / w + c (y - h/2) / h
    to_source = np.array([[1 - bx / w, -cx / h, bx / 2 + cx / 2 - ax],
                          [-by / w, 1 - cy / h, by / 2 + cy / 2 - ay]], np.float64)
    return cv2.warpAffine(prev, to_source, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _explains(params: np.ndarray, prev: np.ndarray, cur: np.ndarray, times: float) -> bool:
    """Whether `prev` moved by the motion `params` matches `cur` at the edges of `prev` (gradient above its
    CAMERA_EDGES percentile, away from the border) better than `prev` as it is: `times` as many edge pixels closer
    to `cur` by more than CAMERA_GREY as further from it."""
    h, w = prev.shape
    moved = _moved(prev, params)
    grad = np.hypot(cv2.Sobel(prev, cv2.CV_32F, 1, 0), cv2.Sobel(prev, cv2.CV_32F, 0, 1))
    m = max(2, int(np.ceil(_reach(params))) + 1)
    inner = (slice(m, h - m), slice(m, w - m))
    edges = grad[inner] >= np.percentile(grad[inner], CAMERA_EDGES)
    c = cur[inner].astype(np.float32)[edges]
    gain = np.abs(c - prev[inner].astype(np.float32)[edges]) - np.abs(c - moved[inner].astype(np.float32)[edges])
    return bool((gain > CAMERA_GREY).sum() >= times * max(1, int((gain < -CAMERA_GREY).sum())))


CHANGE_NOISE = 5.0  # a place changed where its grey level moved by this many times the frame's noise (robust)
CHANGE_FLOOR = 2.0  # grey levels: never by less (quantisation)


def changed(prev: np.ndarray, cur: np.ndarray, reach: int) -> np.ndarray:
    """uint8 (H, W) frames -> bool (H, W): where the frame changed beyond its noise, or is within `reach` pixels of
    such a change (a mover's inside is the same grey from frame to frame; its edges change). The change is the
    frame difference averaged over 3x3 pixels (one noisy pixel is not a change); the noise is its spread over the
    frame (median and median absolute deviation: most of a frame is still), so it follows the camera's own."""
    d = cv2.blur(cv2.absdiff(prev, cur).astype(np.float32), (3, 3))
    median = float(np.median(d))
    spread = 1.4826 * float(np.median(np.abs(d - median)))
    mask = (d > median + max(CHANGE_FLOOR, CHANGE_NOISE * spread)).astype(np.uint8)
    if reach > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * reach + 1, 2 * reach + 1)))
    return mask.astype(bool)


class Steadier:
    """Takes the camera's own motion (`camera_motion`) out of the flows of one sequence, frame after frame:
    (H, W, 2) flow from the uint8 frame `prev` to `cur` -> the same less the camera's motion, float32. Remembers
    whether the camera moved the frame before, so a sway goes on being taken out on the weaker evidence of `keeps`
    (CAMERA_KEEPS) once the frames bore it out by `explains` (CAMERA_EXPLAINS)."""

    def __init__(self, explains: float = CAMERA_EXPLAINS, keeps: float = CAMERA_KEEPS) -> None:
        self.explains, self.keeps = explains, keeps
        self.moving = False

    def reset(self) -> None:
        self.moving = False

    def __call__(self, flow: np.ndarray, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        params = camera_motion(flow, prev, cur, self.keeps if self.moving else self.explains)
        self.moving = bool(params.any())
        if not self.moving:
            return flow.astype(np.float32, copy=False)
        return (flow - _field(params, *flow.shape[:2])).astype(np.float32)


class FlowEstimator:
    """Flow of each frame from the one before it, in pixels per frame: (H, W) uint8 -> (H, W, 2) float32
    (x, y). Holds the previous frame, so one estimator serves one sequence; the first frame of a
    sequence, or the first after `reset()`, has zero flow (as if the frame had been shown before). With
    `steady`, the camera's own motion is taken out of each flow (`Steadier`); with `gated`, the flow is zero where
    the frame did not change (`changed`, within half of DIS's patch of a change), and a frame where nothing changed
    is not given to DIS at all."""

    def __init__(self, steady: bool = False, gated: bool = False) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._dis.setFinestScale(FLOW_FINEST_SCALE)
        self._prev: np.ndarray | None = None
        self._steadier = Steadier() if steady else None
        self._reach = self._dis.getPatchSize() // 2 if gated else None

    def reset(self) -> None:
        self._prev = None
        if self._steadier is not None:
            self._steadier.reset()

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        grey = np.ascontiguousarray(grey)
        if self._prev is None or self._prev.shape != grey.shape:
            flow = np.zeros((*grey.shape, 2), np.float32)
            if self._steadier is not None:
                self._steadier.reset()
        else:
            mask = changed(self._prev, grey, self._reach) if self._reach is not None else None
            if mask is not None and not mask.any():
                # nothing changed, so nothing moved: the flow is zero wherever DIS would put it, and the camera is
                # still. A camera watching a quiet scene preprocesses a frame in a tenth of the time
                flow = np.zeros((*grey.shape, 2), np.float32)
                if self._steadier is not None:
                    self._steadier.reset()
            else:
                flow = self._dis.calc(self._prev, grey, None)
                if self._steadier is not None:
                    flow = self._steadier(flow, self._prev, grey)
                if mask is not None:
                    flow = flow * mask[..., None]
        self._prev = grey
        return flow


def shrink_flow(flow: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, 2) flow in pixels per frame -> (H/factor, W/factor, 2): area-averaged, in pixels of the smaller size."""
    if factor == 1:
        return flow
    h, w = flow.shape[0] // factor, flow.shape[1] // factor
    return cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) / factor


def sequence_flow(frames: np.ndarray, steady: bool = False, gated: bool = False) -> np.ndarray:
    """uint8 (T, H, W) grey frames of one sequence -> (T, H, W, 2) flow, frame 0's zero."""
    est = FlowEstimator(steady, gated)
    return np.stack([est(f) for f in frames]) if len(frames) else np.zeros((0, *frames.shape[1:3], 2), np.float32)
