"""Service settings, from OCRGAN_* environment variables or a .env file; unknown keys fail loudly."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.inference.calibration import MIN_FRAMES as MIN_CALIBRATION_FRAMES

ASSETS = Path(__file__).parent / "assets"
DEFAULT_CHECKPOINT = ASSETS / "default.safetensors"
# OCRGAN_* variables that docker-compose.yml reads from the shell or a .env (not service settings):
# a .env shared by Compose and `ocrgan serve` may carry them.
COMPOSE_VARIABLES = frozenset({"env_file", "publish", "checkpoints_dir"})


def state_dir() -> Path:
    """Where the embedded backend keeps its files ($XDG_STATE_HOME/ocrgan)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "ocrgan"


def cache_dir() -> Path:
    """Where the service keeps what it can make again ($XDG_CACHE_HOME/ocrgan)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ocrgan"


class Backoff:
    """Retry delays of a connection (a camera, Redis): base, 2 base, 4 base ... capped, each jittered within
    [delay/2, delay] so clients that failed together do not retry in step; reset() after a success."""

    def __init__(self, base: float, cap: float) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base {base:g}, cap {cap:g}")
        self.base, self.cap = base, cap
        self.failures = 0

    def next(self) -> float:
        """The wait before the next attempt, counting one more failure."""
        delay = min(self.cap, self.base * 2 ** min(self.failures, 64))
        self.failures += 1
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self.failures = 0


class Settings(BaseSettings):
    """Unknown keyword arguments and unknown OCRGAN_* keys in .env are errors; other .env keys (Compose's
    own variables, other programs' settings) are left alone."""

    model_config = SettingsConfigDict(env_prefix="OCRGAN_", env_file=".env", extra="ignore")

    def __init__(self, **values) -> None:
        unknown = sorted(k for k in values if k not in type(self).model_fields and not k.startswith("_"))
        if unknown:
            raise ValueError(f"unknown settings: {unknown}")
        super().__init__(**values)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        prefix = "ocrgan_"
        typos = sorted(k.upper() for k in getattr(dotenv_settings, "env_vars", {})
                       if k.startswith(prefix) and k[len(prefix):] not in cls.model_fields
                       and k[len(prefix):] not in COMPOSE_VARIABLES)
        if typos:
            raise ValueError(f"unknown settings in .env: {', '.join(typos)}")
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    # --- model and scoring ---------------------------------------------------------------------
    checkpoint: Path = DEFAULT_CHECKPOINT  # the safetensors checkpoint to serve
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available
    torch_threads: int = Field(1, ge=0)  # intra-op threads on CPU (1 leaves the other cores to cameras); 0 = torch's
    opencv_threads: int = Field(1, ge=0)  # OpenCV's own threads (resizing, optical flow); 0 = OpenCV's default, one
    # per core. Each camera preprocesses in its own thread already: OpenCV's pool on top made one optical flow cost
    # 1.4x the CPU, and the service 3-8% more CPU at the same load (docs/benchmarks.md)
    stride: int | None = Field(None, ge=1)  # frames between scored windows; None = the checkpoint's for clips, and
    # for cameras 1 on a GPU and on ONNX Runtime (each frame scored on arrival from cached features:
    # model/streaming.py), the checkpoint's with torch on a CPU (there the frame path costs about 2.5 times the
    # windows per frame); logged at start-up
    max_batch: int | None = Field(None, ge=1)  # windows per forward pass, across cameras; None = 8 on a GPU,
    # on a CPU 8 for a model whose window costs at most 0.5 GFLOP, else 1 (service/inference/batch_size.py)
    max_batch_wait_ms: float = Field(20.0, ge=0)  # how long the scorer waits to fill a batch
    runtime: Literal["auto", "torch", "onnx"] = "auto"  # what runs the model on a CPU: "auto" = ONNX Runtime where
    # onnxruntime, onnx and onnxscript are installed (the service extra has them), else torch; on ONNX Runtime the
    # window and frame paths are exported to ONNX in child processes after start-up (some 15 and 30 s; torch scores
    # meanwhile; a later start reads them from onnx_cache) and run by its CPU kernels, heatmaps included; a camera's
    # first frame and GPUs stay on torch (service/inference/onnx_runtime.py)
    onnx_cache: Path = Field(default_factory=lambda: cache_dir() / "onnx")  # exported graphs, by checkpoint digest
    # and versions: a later start with the same checkpoint reads them instead of exporting (each verified first)
    clip_batch: int | None = Field(None, ge=1)  # windows one uploaded clip may have queued; None = as max_batch
    # --- backend ---------------------------------------------------------------------------------
    redis_url: str | None = None  # None = embedded backend (in-process bus, registry file)
    redis_prefix: str = "ocrgan"  # key and channel prefix in Redis
    registry_path: Path = Field(default_factory=lambda: state_dir() / "streams.json")  # embedded registry
    history_length: int = Field(3000, ge=10)  # score messages kept per camera (both backends)
    lease_seconds: float = Field(10.0, gt=0)  # Redis camera lease; a dead replica's cameras move after it
    replica_id: str | None = None  # default: hostname-pid-random
    # --- security --------------------------------------------------------------------------------
    api_key: str | None = None  # None = open; else required on mutating routes and WebSockets
    allowed_schemes: list[str] = ["rtsp", "rtsps", "http", "https"]  # stream URL schemes
    allow_file_sources: bool = False  # file:// URLs and local paths as streams
    allow_private_addresses: bool = True  # RFC 1918 / ULA hosts (where LAN cameras live)
    allow_public_addresses: bool = True  # hosts on the internet; false keeps cameras on the LAN
    allow_loopback: bool = False  # 127.0.0.0/8, ::1, localhost
    allow_link_local: bool = False  # 169.254.0.0/16, fe80::/10 and cloud metadata endpoints
    # --- uploads (POST /score) -------------------------------------------------------------------
    upload_max_bytes: int = Field(256 * 1024 * 1024, ge=1)
    upload_max_frames: int = Field(10_000, ge=1)
    upload_max_pixels: int = Field(4096 * 2304, ge=1)  # width * height
    upload_max_side: int = Field(4096, ge=16)
    # the least width and height: the model scales every frame to its working size (96x64, and its flow to 192x128,
    # for the shipped model); a frame of a few pixels scaled up holds nothing to score (a 1x1 clip is one flat grey)
    upload_min_side: int = Field(16, ge=1)
    # decoded pixels per uploaded byte (beyond the first 2**27): refuses a small file that expands into
    # huge or countless frames; real footage stays under ~1000 even at very low bitrates
    upload_max_expansion: float = Field(10_000.0, gt=0)
    heatmap_grid: tuple[int, int] = (12, 16)  # rows, cols of the coarse per-frame heatmaps in /score
    max_concurrent_clips: int = Field(2, ge=1)  # clips decoded and scored at once; more requests wait
    max_concurrent_uploads: int = Field(8, ge=1)  # uploads received, waiting or scored at once; more get 429
    upload_idle_timeout_seconds: float = Field(30.0, gt=0)  # an upload that sends nothing this long gets 408
    # an upload whose average rate since it began falls below this (once its grace period is over) gets 408, so
    # clients trickling bytes cannot hold the upload slots; 16 kB/s (128 kbit/s) is slower than any usable link
    upload_min_bytes_per_second: float = Field(16 * 1024, ge=0)  # 0 = no minimum rate
    upload_rate_grace_seconds: float = Field(10.0, ge=0)  # the rate is first enforced this long into an upload
    upload_timeout_seconds: float = Field(900.0, gt=0)  # the whole body must arrive within this, else 408
    # decoding and scoring one clip (from when it starts, not counting the wait for OCRGAN_MAX_CONCURRENT_CLIPS)
    # may take this long, else 413: the backstop behind the frame and pixel budgets (10,000 frames score in
    # ~3.5 min with the shipped model on one CPU thread)
    upload_processing_timeout_seconds: float = Field(600.0, gt=0)
    upload_dir: Path | None = None  # where uploads are spooled; None = the system temp dir
    # --- camera streams --------------------------------------------------------------------------
    stream_fps: float = Field(10.0, gt=0, le=120)  # default sampling rate of a camera
    watchdog_seconds: float = Field(10.0, gt=0)  # no frame for this long -> reconnect
    open_timeout_seconds: float = Field(10.0, gt=0)
    reconnect_base_seconds: float = Field(1.0, gt=0)  # first retry after [base/2, base]
    # longest wait between retries, jittered to [cap/2, cap]: a camera is back within about cap + the time to
    # connect and decode a first frame of its server's return (under 5 s at the default)
    reconnect_cap_seconds: float = Field(3.0, gt=0)
    max_failures: int = Field(0, ge=0)  # consecutive failed connects before "failed"; 0 = retry forever
    max_pending_windows: int = Field(2, ge=1)  # per camera, queued for the scorer; beyond: frames dropped
    prescale: bool = True  # let the decoder shrink big frames to 2x the model size before preprocess()
    # how much lower the camera threads' CPU priority is than the scorer's (Linux niceness, per thread; 0 = the
    # same): every frame waits for the one scorer thread, while each camera's decoding and flow can wait a little.
    # On the 2-core VM, four cameras at 25 fps frame by frame: 0 dropped 1-5%, p50 550-620 ms; 5 dropped none,
    # p50 50-53 ms (docs/benchmarks.md, "The scorer first")
    camera_nice: int = Field(5, ge=0, le=19)
    snapshot_interval_seconds: float = Field(1.0, gt=0)  # how often a window also computes its heatmap
    calibration_frames: int = Field(600, ge=MIN_CALIBRATION_FRAMES)  # warm-up of a camera's own score statistics
    # (a minute at the default 10 fps: 25 s openings of a new scene left up to 30% of its normal frames flagged,
    # a minute at most 7%; docs/results.md, "A new camera")
    # a calibrated camera learns its units and level again over each span of this many frames (ten minutes at 10
    # fps), from a sample of the frames it did not flag; 0 keeps the warm-up's for good
    recalibration_frames: int = Field(6000, ge=0)
    event_start_frames: int = Field(3, ge=1)  # consecutive anomalous frames that open an event
    event_end_frames: int = Field(10, ge=1)  # consecutive normal frames that close it
    ws_queue: int = Field(1000, ge=10)  # messages buffered per WebSocket client before dropping
    max_ws_clients: int = Field(100, ge=1)  # WebSocket clients at once; more are refused (503)
    # --- server ----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("api_key", "redis_url", "replica_id", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        """`OCRGAN_API_KEY=` (empty) means no key, not an empty one."""
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("allowed_schemes")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [s.lower() for s in v]

    @model_validator(mode="after")
    def _backoff(self) -> Settings:
        if self.reconnect_cap_seconds < self.reconnect_base_seconds:
            raise ValueError("reconnect_cap_seconds must be >= reconnect_base_seconds")
        if self.upload_min_side > self.upload_max_side:
            raise ValueError("upload_min_side must be <= upload_max_side")
        return self
