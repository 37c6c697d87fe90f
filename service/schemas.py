"""Request bodies of the API (unknown fields are refused, so typos fail loudly)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

STREAM_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class StreamSpec(BaseModel):
    """A camera to score."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=STREAM_ID_PATTERN, description="letters, digits, _ . - (at most 64)", examples=["gate"])
    url: str = Field(min_length=1, max_length=2048, description="rtsp://, rtsps://, http(s):// by default",
                     examples=["rtsp://user:pass@192.168.1.20:554/stream1"])
    fps: float | None = Field(None, gt=0, le=120, description="sampling rate; default OCRGAN_STREAM_FPS")
    stride: int | None = Field(None, ge=1, description="frames between scored windows; default the model's")
    calibrate: bool = Field(True, description="learn this camera's normal score statistics over a warm-up of "
                                              "OCRGAN_CALIBRATION_FRAMES frames (false: the checkpoint's)")
