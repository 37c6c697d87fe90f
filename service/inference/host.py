"""The served model: loaded once from its checkpoint, with what the API reports about it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model import CheckpointInfo, OCRGANVideo, load_checkpoint
from service.inference.batch_size import SMALL_WINDOW_GFLOP, batch_rule, window_gflop
from service.settings import Settings

log = logging.getLogger("ocrgan.service")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("OCRGAN_DEVICE=cuda but no CUDA device is available")
    return torch.device(name)


@dataclass
class ModelHost:
    model: OCRGANVideo
    info: CheckpointInfo
    device: torch.device
    stride: int  # the default stride for clips and cameras
    _batch: int | None = field(default=None, init=False, repr=False)

    @classmethod
    def load(cls, settings: Settings) -> ModelHost:
        """Load the checkpoint; raises CheckpointError (with the reason) when it cannot be used."""
        device = pick_device(settings.device)
        if device.type == "cpu" and settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        model, info = load_checkpoint(settings.checkpoint, device)
        stride = settings.stride or model.cfg.stride
        if not 1 <= stride <= model.cfg.num_frames:
            raise ValueError(f"OCRGAN_STRIDE={stride} must be in [1, {model.cfg.num_frames}] for this checkpoint")
        log.info("model %s (%s) on %s, stride %d", Path(info.path).name, info.sha256[:12], device, stride)
        return cls(model, info, device, stride)

    def batch_sizes(self, settings: Settings) -> tuple[int, int]:
        """Windows per forward pass for cameras and for uploaded clips: the settings where given (clips
        follow OCRGAN_MAX_BATCH when OCRGAN_CLIP_BATCH is unset), else `best_batch()`."""
        cameras = settings.max_batch or self.best_batch()
        return cameras, settings.clip_batch or cameras

    def best_batch(self) -> int:
        """Windows per forward pass when the settings leave it open: by batch_rule (GPU_BATCH on a GPU; on a CPU,
        by the model's cost per window)."""
        if self._batch is None:
            if self.device.type != "cpu":
                self._batch = batch_rule(self.device, 0.0)
                log.info("batch of %d windows per forward pass on %s", self._batch, self.device)
            else:
                gflop = window_gflop(self.model, self.stride)
                self._batch = batch_rule(self.device, gflop)
                log.info("batch of %d window(s) per forward pass on the CPU: a window costs %.2f GFLOP (batches "
                         "pay only up to %.1f)", self._batch, gflop, SMALL_WINDOW_GFLOP)
        return self._batch

    @property
    def amp(self) -> bool:
        return self.device.type == "cuda"

    @property
    def threshold(self) -> float:
        return float(self.model.threshold)

    @property
    def grey(self) -> bool:
        """Decode luma (the model's nc == 1) rather than RGB."""
        return self.model.cfg.nc == 1

    def describe(self) -> dict[str, Any]:
        cfg = self.model.cfg
        return {
            "checkpoint": Path(self.info.path).name,
            "sha256": self.info.sha256,
            "num_frames": cfg.num_frames,
            "height": cfg.hw[0],
            "width": cfg.hw[1],
            "channels": cfg.nc,
            "temporal": cfg.temporal,
            "objective": cfg.objective,
            "stride": self.stride,
            "threshold": self.threshold,
            "score_mean": float(self.model.score_mean),
            "score_std": float(self.model.score_std),
            "smoothing": cfg.score_smoothing,
            "device": str(self.device),
            "half": self.info.half,
        }
