"""Frames in (uint8, any size, grey or colour) -> model input. Defined once, used by every caller.

A frame is shrunk to the working size by area averaging (uint8), converted to luma or RGB in [-1, 1] and, with
`cfg.exposure`, shifted and scaled to a set mean and standard deviation, so a change of light or exposure over the
whole frame (the sun out of a cloud, a camera's auto-exposure, lights switched on) does not read as an anomaly;
with `cfg.drops`, rain is taken out of a sequence's frames first (`DropFilter`); a model with the motion
band also gets the optical flow of the frame from the one before it, in
pixels per frame at the working size (`model.motion`), so input frames are (nc + 2, h, w).
"""

from __future__ import annotations

import math
from collections import deque

import cv2
import numpy as np
import torch

from model.config import OCRGANConfig
from model.motion import FLOW_FINEST_SCALE, FLOW_PRESET, FlowEstimator, luma, resize_area, shrink_flow

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, the luma every decoder produces
EXPOSURE_MIN_STD = 0.05  # a frame's contrast is stretched at most from this standard deviation ([-1, 1] units, about
# 6 grey levels): a covered lens or a dark night is not blown up into full-contrast noise


def input_spec(cfg: OCRGANConfig) -> dict:
    """What preprocessing does, stored with the weights so a caller can check it."""
    h, w = cfg.hw
    spec = {
        "height": h,
        "width": w,
        "channels": cfg.in_channels,
        "colour": "luma" if cfg.nc == 1 else "rgb",
        "input": "uint8 frames (T, H, W) grey or (T, H, W, 3) RGB, any size",
        "resize": "area averaging (OpenCV INTER_AREA) to the working size, in uint8",
        "range": [-1.0, 1.0],
    }
    if cfg.exposure is not None:
        spec["exposure"] = {"mean": cfg.exposure[0], "std": cfg.exposure[1],
                            "rule": "each frame's appearance shifted and scaled to this mean and standard deviation "
                                    f"(its own at least {EXPOSURE_MIN_STD}), then clipped to the range"}
    if cfg.drops:
        spec["drops"] = (f"bright features fitting no {DROP_SIZE}x{DROP_SIZE} square (grey top-hat) that were not "
                         "there in the frame before (dilated by the same square), and where more than "
                         f"{SNOW_SHARE:.1%} of the frame holds such features new since two frames before but not "
                         "since one (snow), those too, taken out of each frame at "
                         + ("the flow's size" if cfg.motion else "the working size") + " before anything else")
    if cfg.motion:
        fh, fw = cfg.flow_hw
        spec["motion"] = {"flow": f"OpenCV DIS, preset {FLOW_PRESET}, finest scale {FLOW_FINEST_SCALE}, "
                                  f"on frames area-resized to {fh}x{fw}, from the previous frame of the sequence "
                                  "(zero for its first frame), area-averaged down to the working size" +
                                  (", less the camera's own motion (a robust affine fit)" if cfg.steady else "") +
                                  (", zero where the frame did not change beyond its noise (nor within "
                                   "half a DIS patch of such a change)" if cfg.gated else ""),
                          "unit": "pixels per frame at the working size", "channels": ["dx", "dy"]}
    return spec


def _grey_or_rgb(frame: np.ndarray, cfg: OCRGANConfig) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[-1] != 3):
        raise ValueError(f"a frame must be (H, W) or (H, W, 1|3), got {frame.shape}")
    if cfg.nc == 1:
        return luma(frame)
    return np.repeat(frame[..., None], 3, axis=-1) if frame.ndim == 2 else frame


def flow_frame(frame: np.ndarray, cfg: OCRGANConfig) -> np.ndarray:
    """uint8 (H, W) grey or (H, W, 1|3) RGB -> the frame the motion band's flow is computed on: luma or RGB
    at flow_scale times the working size."""
    return resize_area(np.ascontiguousarray(_grey_or_rgb(frame, cfg)), cfg.flow_hw)


def working_frame(frame: np.ndarray, cfg: OCRGANConfig) -> np.ndarray:
    """uint8 (H, W) grey or (H, W, 1|3) RGB -> uint8 (h, w) luma or (h, w, 3) RGB at the working size. With the
    motion band it is the flow's frame shrunk once more, so both come from one resize of the input."""
    if cfg.motion and cfg.flow_scale > 1:
        return resize_area(flow_frame(frame, cfg), cfg.hw)
    return resize_area(np.ascontiguousarray(_grey_or_rgb(frame, cfg)), cfg.hw)


def appearance(frames: np.ndarray, exposure: tuple[float, float] | None = None) -> torch.Tensor:
    """uint8 working-size frames (T, h, w) or (T, h, w, 3) -> float (T, nc, h, w) in [-1, 1]; with `exposure`
    (mean, std), each frame is shifted and scaled to that mean and standard deviation over its pixels (its own
    taken as at least EXPOSURE_MIN_STD) and clipped to [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    x = x.float().div_(127.5).sub_(1.0)
    if exposure is None or not len(x):
        return x
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, correction=0).clamp_min_(EXPOSURE_MIN_STD)
    return x.sub_(mean).mul_(exposure[1] / std).add_(exposure[0]).clamp_(-1.0, 1.0)


def preprocess(frames: np.ndarray | torch.Tensor, cfg: OCRGANConfig,
               device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 frames (T, H, W) grey or (T, H, W, 1|3) -> float (T, nc, h, w) in [-1, 1]: the appearance
    channels only (a model with the motion band takes frames of a sequence through `SequencePreprocessor`)."""
    arr = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {arr.dtype}")
    if arr.ndim not in (3, 4):
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, 1|3), got {arr.shape}")
    out = appearance(np.stack([working_frame(f, cfg) for f in arr]) if len(arr) else
                     np.zeros((0, *cfg.hw) if cfg.nc == 1 else (0, *cfg.hw, 3), np.uint8), cfg.exposure)
    return out.to(device) if device is not None else out


DROP_SIZE = 3  # pixels of the frame the flow is computed on (twice the working size): what fits no square of
# this side is thin enough to be a drop


SNOW_SHARE = 0.008  # of the frame: thin bright features new since two frames before and not since one, beyond
# which a frame is taken to be in falling snow. On UCSD Ped2 (every training and test frame) at most 0.45%, the
# walkers' own highlights; in the snow of benchmarks/camera_conditions.py (150 flakes) at least 1.3%
DROP_LEVEL = 10  # grey levels: a new thin feature this much brighter than what the opening leaves counts for SNOW_SHARE
DROP_CONTEXT = 2  # frames before a frame that DropFilter reads


class DropFilter:
    """Rain and snow: uint8 frames of one sequence, in order -> the same with the thin bright features that are new
    in each frame taken out. A drop crosses the view within a frame or two, so in every frame it is thin (it fits no
    DROP_SIZE square: it shows in the grey top-hat, the frame less its opening) and somewhere it was not the frame
    before. A thin bright feature of the scene (a line on the road, a lamp) is there in both frames and is kept;
    an object as large as the square is kept whatever it does. A falling flake is within a pixel of where it was the
    frame before, but not of where it was two frames before: where many thin bright features are new since two
    frames before that were not new since one (more than SNOW_SHARE of the frame: snow, which the frame before
    cannot tell), those are taken out too. Where the air is clear that rule is left alone: a walker's own thin
    highlights move as well, and taking them out cost flow speed 0.004 of AUC on Ped2 (docs/results.md). A frame's
    previous frames are those passed before it; the first of a sequence, or the first after `reset()`, is kept as it
    is, and the second is compared with the first alone. Grey (H, W) or colour (H, W, 3): colour frames lose the
    same amount in every channel, measured on their luma. Without state beyond the DROP_CONTEXT frames before, so a
    sequence cut into pieces, each with those frames before it, is filtered as it is whole."""

    def __init__(self) -> None:
        self._square = cv2.getStructuringElement(cv2.MORPH_RECT, (DROP_SIZE, DROP_SIZE))
        self._past: deque[np.ndarray] = deque(maxlen=DROP_CONTEXT)  # the top-hats of the frames before, oldest first
        self.snowing = False  # whether the last frame was taken to be in snow

    def reset(self) -> None:
        self._past.clear()
        self.snowing = False

    def _tophat(self, frame: np.ndarray) -> np.ndarray:
        grey = luma(frame) if frame.ndim == 3 else frame
        return cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, self._square)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        tophat = self._tophat(frame)
        if self._past and self._past[-1].shape != tophat.shape:
            self._past.clear()
        past = list(self._past)
        self._past.append(tophat)
        self.snowing = False
        if not past:
            return frame
        new = cv2.subtract(tophat, cv2.dilate(past[-1], self._square))  # uint8, saturating at 0
        if len(past) == DROP_CONTEXT:
            older = cv2.subtract(tophat, cv2.dilate(past[0], self._square))
            self.snowing = float((cv2.subtract(older, new) > DROP_LEVEL).mean()) > SNOW_SHARE
            if self.snowing:
                new = cv2.max(new, older)
        if not new.any():
            return frame
        return cv2.subtract(frame, cv2.merge([new] * 3) if frame.ndim == 3 else new)


MAX_INTERVAL = 4.0  # frame periods: flow across a longer gap is scaled as if across this one (and the other way,
# 1 / MAX_INTERVAL, for a frame that came too soon)
INTERVAL_JITTER = 0.1  # a gap this close to one period is one: timestamps in a millisecond time base jitter by a few
# percent


class SequencePreprocessor:
    """The frames of one sequence, in order -> model input frames (nc [+ 2], h, w). It holds the previous
    frame for the motion band; `reset()` after a discontinuity (a reconnect) starts a new sequence.

    A frame may come more than one frame period after the one before it: a camera sampled to a rate that does
    not divide its own (25 fps kept at 10: 0.12 s, 0.08 s, ...), or a frame dropped while the scorer was busy.
    Flow across two periods is twice as long, and a walker would move as fast as a cyclist. So `interval`, the
    time since the previous frame in frame periods, divides the flow: its unit stays pixels per period."""

    def __init__(self, cfg: OCRGANConfig) -> None:
        self.cfg = cfg
        self.flow = FlowEstimator(cfg.steady, cfg.gated) if cfg.motion else None
        self.drops = DropFilter() if cfg.drops else None

    def reset(self) -> None:
        if self.flow is not None:
            self.flow.reset()
        if self.drops is not None:
            self.drops.reset()

    def __call__(self, frame: np.ndarray, interval: float = 1.0) -> torch.Tensor:
        """uint8 (H, W) or (H, W, 1|3), any size -> (in_channels, h, w); `interval`: frame periods since the
        previous frame (kept within [1 / MAX_INTERVAL, MAX_INTERVAL]; 1 within INTERVAL_JITTER of it, and where
        unknown or not a positive number)."""
        if self.flow is None:
            small = working_frame(frame, self.cfg)
            small = self.drops(small) if self.drops is not None else small
            return appearance(small[None], self.cfg.exposure)[0]
        big = flow_frame(frame, self.cfg)
        big = self.drops(big) if self.drops is not None else big
        x = appearance(resize_area(big, self.cfg.hw)[None], self.cfg.exposure)[0]
        f = shrink_flow(self.flow(luma(big)), self.cfg.flow_scale)
        if abs(interval - 1.0) > INTERVAL_JITTER:
            f = f / (min(max(interval, 1 / MAX_INTERVAL), MAX_INTERVAL) if math.isfinite(interval) and interval > 0
                     else 1.0)
        return torch.cat([x, torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)])


def preprocess_sequence(frames: np.ndarray, cfg: OCRGANConfig) -> torch.Tensor:
    """uint8 frames (T, ...) of one sequence -> (T, in_channels, h, w)."""
    prep = SequencePreprocessor(cfg)
    if not len(frames):
        return torch.zeros(0, cfg.in_channels, *cfg.hw)
    return torch.stack([prep(f) for f in frames])
