"""The served model: loaded once from its checkpoint, with what the API reports about it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import torch

from model import CheckpointInfo, OCRGANVideo, load_checkpoint
from model.windows import frame_by_frame
from service.inference import onnx_runtime
from service.inference.batch_size import SMALL_WINDOW_GFLOP, batch_rule, window_gflop
from service.inference.onnx_runtime import FrameRunner, WindowRunner
from service.settings import Settings

log = logging.getLogger("ocrgan.service")


def choose_runtime(setting: str, device: torch.device) -> tuple[str, str]:
    """What runs the model ("torch" or "onnx"), and why: OCRGAN_RUNTIME "auto" (the default) takes ONNX Runtime on
    a CPU where its packages are installed (they come with the service), since there it scores a window 1.3-1.9
    times as fast as eager torch and a frame 1.6 times (docs/benchmarks.md); torch on a GPU, and wherever it is
    asked for."""
    if setting == "torch":
        return "torch", "OCRGAN_RUNTIME=torch"
    if device.type != "cpu":
        return "torch", f"the model runs on {device}, where ONNX Runtime's CPU kernels do not"
    if not onnx_runtime.available():
        if setting == "onnx":
            log.warning("OCRGAN_RUNTIME=onnx but onnxruntime, onnx or onnxscript is not installed (pip install "
                        "'.[service]'): the model stays on torch")
        return "torch", "onnxruntime, onnx or onnxscript is not installed"
    return "onnx", "OCRGAN_RUNTIME=onnx" if setting == "onnx" else "a CPU with ONNX Runtime installed"


def camera_stride(setting: int | None, model: OCRGANVideo, device: torch.device,
                  runtime: str = "torch") -> tuple[int, str]:
    """A camera's default stride, and why: OCRGAN_STRIDE when set; else 1 (every frame scored on arrival, from
    cached features) on a GPU, where the new frames of all cameras batch cheaply, and on a CPU with ONNX Runtime
    (choose_runtime), whose frame graph costs about 1.3 times the window graph per frame (on the 2-core VM four
    cameras at 25 fps frame by frame at a median latency of 41-182 ms; by windows, where a frame waits for up to 7
    more, five at 212-313 ms); else the checkpoint's, since with torch on a CPU the frame path costs about 2.5 times
    the window path per frame (3 cameras at 25 fps either way, docs/benchmarks.md)."""
    if setting:
        return setting, "OCRGAN_STRIDE"
    if not model.cfg.causal:
        return model.cfg.stride, f'the checkpoint\'s: objective "{model.cfg.objective}" sees later frames'
    if device.type == "cuda":
        return 1, "on a GPU: the new frames of all cameras batch cheaply"
    if runtime == "onnx":
        return 1, "ONNX Runtime on a CPU: its frame graph costs about 1.3 times the window graph per frame"
    return model.cfg.stride, "the checkpoint's with torch on a CPU: the frame path costs about 2.5 times the windows"


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
    stride: int  # the default stride for uploaded clips
    camera_stride: int = 0  # the default stride for cameras (camera_stride()); 0 = as `stride`
    runtime: str = "torch"  # what runs the model once its graphs are ready (choose_runtime)
    window_runner: WindowRunner | None = None  # runs the window path in ONNX Runtime once exported (else torch)
    frame_runner: FrameRunner | None = None  # the same for the frame path
    _batch: int | None = field(default=None, init=False, repr=False)
    _exports: threading.Thread | None = field(default=None, init=False, repr=False)

    @classmethod
    def load(cls, settings: Settings) -> ModelHost:
        """Load the checkpoint; raises CheckpointError (with the reason) when it cannot be used."""
        device = pick_device(settings.device)
        if device.type == "cpu" and settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        if settings.opencv_threads:
            cv2.setNumThreads(settings.opencv_threads)
        model, info = load_checkpoint(settings.checkpoint, device)
        stride = settings.stride or model.cfg.stride
        if not 1 <= stride <= model.cfg.num_frames:
            raise ValueError(f"OCRGAN_STRIDE={stride} must be in [1, {model.cfg.num_frames}] for this checkpoint")
        log.info("model %s (%s) on %s, stride %d for clips", Path(info.path).name, info.sha256[:12], device, stride)
        runtime, why = choose_runtime(settings.runtime, device)
        log.info("runtime: %s (%s)", "ONNX Runtime" if runtime == "onnx" else "torch", why)
        cameras, why = camera_stride(settings.stride, model, device, runtime)
        host = cls(model, info, device, stride, cameras, runtime)
        log.info("cameras: stride %d, scored %s (%s)", cameras,
                 "frame by frame" if host.frame_path(cameras) else "by windows", why)
        if runtime == "onnx":
            host.start_onnx(settings)
        return host

    def start_onnx(self, settings: Settings) -> None:
        """The model on ONNX Runtime (choose_runtime): export the scoring paths in use in the background (the
        cameras' first; a graph kept in OCRGAN_ONNX_CACHE by an earlier start is read instead) and run each in ONNX
        Runtime once done: the window path where clips or cameras are scored by windows, the frame path for a
        causal model (a camera may ask for stride 1); torch scores meanwhile, and for good where an export
        fails."""
        by_windows = [s for s in (self.camera_stride, self.stride) if not self.frame_path(s)]
        frames = self.frame_path(self.camera_stride)  # then only uploads read the window graph: it waits on standby
        kinds = ["window"] if by_windows else []
        if self.model.cfg.causal:
            kinds.insert(0 if frames else len(kinds), "frame")
        threads = settings.torch_threads or torch.get_num_threads()
        log.info("ONNX Runtime: the %s path(s) move to ONNX Runtime in the background (their graphs read from "
                 "%s or exported); torch scores until each is ready", " and ".join(kinds), settings.onnx_cache)

        def ready(kind: str, runner: WindowRunner | FrameRunner) -> None:
            if kind == "frame":
                self.frame_runner = runner
            else:
                self.window_runner = runner

        self._exports = onnx_runtime.export_in_background(self.info.path, self.model, kinds,
                                                          max(by_windows, default=1), threads, ready,
                                                          self.info.sha256, settings.onnx_cache,
                                                          standby=frozenset({"window"} if frames else ()))

    @property
    def exporting(self) -> bool:
        """Whether graphs for ONNX Runtime are still being read or exported in the background."""
        return self._exports is not None and self._exports.is_alive()

    def __post_init__(self) -> None:
        self.camera_stride = self.camera_stride or self.stride

    def frame_path(self, stride: int) -> bool:
        """Whether a camera at this stride is scored frame by frame from cached features (model.windows)."""
        return frame_by_frame(self.model, stride)

    def scoring(self, stride: int) -> str:
        """How a camera at this stride is scored, as views and /model name it: "frames" or "windows"."""
        return "frames" if self.frame_path(stride) else "windows"

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
                onnx_runtime.release_memory()  # the counted pass's temporaries: some 25 MB the heap would keep
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
            "runtime": "onnx" if self.window_runner is not None or self.frame_runner is not None else "torch",
            "exporting": self.exporting,
        }
