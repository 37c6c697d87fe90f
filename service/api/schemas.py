"""Request bodies of the API (unknown fields are refused, so typos fail loudly) and the shapes of its answers and
WebSocket messages, as the OpenAPI document declares them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.json_schema import DEFAULT_REF_TEMPLATE

STREAM_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
Scoring = Literal["frames", "windows"]  # how a camera is scored (ModelHost.scoring): frame by frame, or by windows


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


# --- responses (documented in the OpenAPI document; the routes answer model_dump(mode="json") of these) --------

class ErrorResponse(BaseModel):
    """Every refusal: what was wrong, in a sentence."""

    detail: str = Field(examples=["no stream 'gate'"])


class FieldError(BaseModel):
    """One field of a request that does not match the schema (its value is not echoed: a URL may hold a password)."""

    loc: list[str | int] = Field(description="where: body, query, path or header, then the field's path",
                                 examples=[["body", "url"]])
    msg: str
    type: str = Field(examples=["missing"])


class ValidationErrorResponse(BaseModel):
    """422: a list of field errors when the request does not match the schema; a sentence when it does but is
    refused all the same (a refused camera URL, an undecodable clip, a stride the model cannot take)."""

    detail: str | list[FieldError]


class FrameScore(BaseModel):
    index: int
    timestamp: float = Field(description="seconds from the clip's first frame")
    score: float
    normalised: float
    anomaly: bool
    calibrating: bool = Field(description="one of the opening frames calibration is learned on (never anomalous)")
    heatmap: list[list[float]] | None = Field(None, description="with ?heatmaps=true: a coarse anomaly map")


class ClipCalibration(BaseModel):
    source: str = Field(description="clip (its opening seconds) or camera (its learned calibration)")
    mean: float
    std: float
    frames: int | None = None
    seconds: float | None = None
    camera: str | None = None
    scales: dict[str, float] | None = None


class ModelInfo(BaseModel):
    """The served checkpoint (GET /model adds the backend, the replica and whether an API key is required)."""

    checkpoint: str
    sha256: str | None = None
    num_frames: int
    height: int
    width: int
    channels: int
    temporal: str = Field(description="the temporal module of the generator")
    objective: str
    stride: int = Field(description="frames between scored windows of an uploaded clip by default")
    threshold: float
    score_mean: float = Field(description="mean of the checkpoint's smoothed scores on its training footage")
    score_std: float
    smoothing: float = Field(description="causal EMA factor on published scores (0: none)")
    device: str
    half: bool = Field(description="the weights run in half precision")
    runtime: str = Field("torch", description='what runs the model: "torch", or "onnx" (ONNX Runtime, the default on '
                         'a CPU, once the checkpoint\'s graphs are exported or read after start-up)')
    exporting: bool = Field(False, description="graphs for ONNX Runtime are still being exported or read in the "
                            "background (torch scores meanwhile)")


class ScoreResult(BaseModel):
    """POST /score: per-frame anomaly scores of a clip."""

    frames: list[FrameScore]
    num_frames: int
    calibration: str | ClipCalibration = Field(description='"checkpoint", or the clip\'s or camera\'s calibration')
    fps: float | None = None
    width: int
    height: int
    rotation: int = Field(description="degrees counterclockwise the frames were turned upright: 0, 90, 180, 270")
    start_time: float | None = Field(None, description="the first frame's own time in the file, seconds")
    format: str | None = None
    codec: str | None = None
    model: ModelInfo
    elapsed_ms: float
    heatmap_grid: list[int] | None = Field(None, description="with ?heatmaps=true: rows and columns of a heatmap")


StreamStateName = Literal["pending", "connecting", "running", "reconnecting", "stopped", "failed"]


class LastScore(BaseModel):
    frame_index: int
    timestamp: float
    score: float
    normalised: float
    anomaly: bool


class Normalisation(BaseModel):
    mean: float
    std: float
    threshold: float
    calibration: Literal["off", "warming", "done"]
    calibration_frames: int | None = None
    calibration_target: int | None = None
    heatmap_scale: float | None = None
    scales: dict[str, float] | None = None
    recalibrations: int | None = None  # times the camera has learnt its units and level again since its warm-up


class StreamView(BaseModel):
    """A camera as a replica sees it (a camera no replica scores yet has only the registration's fields)."""

    id: str
    url: str = Field(description="the camera URL, its password redacted")
    state: StreamStateName
    replica: str | None = Field(None, description="the replica scoring it")
    fps: float | None = Field(None, description="sampling rate")
    stride: int | None = None
    scoring: Scoring | None = Field(
        None, description='"frames": each frame scored on arrival from cached features (stride 1); "windows": a '
                          "window of the last frames every `stride` frames")
    calibrate: bool | None = None
    fps_measured: float | None = None
    frames_decoded: int | None = None
    frames_skipped: int | None = None
    frames_dropped: int | None = None
    frames_scored: int | None = None
    decode_errors: int | None = None
    reconnects: int | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_frame_age_s: float | None = None
    source_size: list[int] | None = None
    started_at: float | None = None
    updated_at: float | None = None
    last_score: LastScore | None = None
    anomaly_active: bool | None = None
    anomaly_events: int | None = None
    normalisation: Normalisation | None = None


class StreamList(BaseModel):
    streams: list[StreamView]
    replica: str = Field(description="the replica that answered")


def _none_missed(n: int) -> bool:
    return n == 0


class LiveMessage(BaseModel):
    """What every live message carries besides its own fields. Messages are built for every frame of every camera,
    validated (about 1 µs for a score message) and serialised once per destination (model_dump_json, about 2 µs)."""

    model_config = ConfigDict(frozen=True)

    dropped: int = Field(0, ge=0, exclude_if=_none_missed,
                         description="messages this WebSocket client missed just before this one because it read "
                                     "too slowly (sent only when some were)")


class ScoreMessage(LiveMessage):
    """A scored frame of a camera (WebSocket message, and an item of GET /streams/{id}/scores)."""

    type: Literal["score"]
    stream_id: str
    replica: str = Field(description="the replica that scored it")
    frame_index: int
    timestamp: float = Field(description="unix time of the frame")
    score: float
    normalised: float
    anomaly: bool


class EventMessage(LiveMessage):
    """An anomaly event starts or ends (with hysteresis)."""

    type: Literal["event"]
    stream_id: str
    replica: str = Field(description="the replica that scored it")
    event: Literal["start", "end"]
    frame_index: int
    timestamp: float = Field(description="unix time of the frame that started or ended it")
    started_at: float | None = Field(description="unix time of the frame that started the event")
    peak: float | None = Field(description="the highest normalised score of the event so far")
    at: float = Field(description="unix time the event was published")


class StatusMessage(LiveMessage):
    """A camera's state changed."""

    type: Literal["status"]
    stream_id: str
    replica: str = Field(description="the replica whose worker changed state")
    state: StreamStateName
    previous: StreamStateName
    reason: str | None = Field(description="why (an error, \"deleted\", \"lease lost\" ...); null when none")
    timestamp: float = Field(description="unix time of the change")


class HelloMessage(LiveMessage):
    """The first WebSocket message: the replica, the threshold and the cameras (one, on /ws/streams/{id})."""

    type: Literal["hello"]
    replica: str
    threshold: float
    streams: list[StreamView]


StreamMessage = Annotated[ScoreMessage | EventMessage | StatusMessage, Field(discriminator="type")]
WebSocketMessage = Annotated[HelloMessage | ScoreMessage | EventMessage | StatusMessage, Field(discriminator="type")]
STREAM_MESSAGE: TypeAdapter[ScoreMessage | EventMessage | StatusMessage] = TypeAdapter(StreamMessage)
WEBSOCKET_MESSAGE: TypeAdapter[HelloMessage | ScoreMessage | EventMessage | StatusMessage] = TypeAdapter(
    WebSocketMessage)


def validation_problems(e: ValidationError) -> str:
    """A validation error on one line: each wrong field's path and what is wrong (never its value)."""
    return "; ".join(f"{'.'.join(map(str, x['loc'])) or 'message'}: {x['msg']}" for x in e.errors(include_input=False))


def live_messages_schema(ref_template: str = DEFAULT_REF_TEMPLATE) -> dict[str, Any]:
    """The JSON schema of every live message (WebSocketMessage, its parts under $defs), served at
    GET /schemas/messages.json and merged into the OpenAPI document's components."""
    schema = WEBSOCKET_MESSAGE.json_schema(ref_template=ref_template)
    return {**schema, "title": "WebSocketMessage",
            "description": "a message pushed on /ws/streams and /ws/streams/{stream_id}; the score, event and "
                           "status messages are also published to the backend (Redis channel <prefix>:live:<id> "
                           "and stream <prefix>:history:<id>, field m) and listed by GET /streams/{id}/scores"}


class StreamScores(BaseModel):
    stream_id: str
    items: list[StreamMessage] = Field(description="oldest first: score messages, with ?events=true also event "
                                                   "and status messages")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    model: bool
    scorer: bool
    backend: str
    backend_reachable: bool
    ready: bool


class ServedModel(ModelInfo):
    camera_stride: int = Field(description="the stride of a camera registered without one: OCRGAN_STRIDE when "
                                           "set, else chosen for the device (docs/operations.md)")
    camera_scoring: Scoring = Field(description='how a camera at `camera_stride` is scored: "frames", each frame on '
                                                'arrival from cached features; "windows", a window every '
                                                "`camera_stride` frames")
    backend: str
    replica: str
    auth: bool = Field(description="mutating routes require the X-API-Key header")
