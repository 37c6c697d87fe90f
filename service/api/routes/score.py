"""POST /score: per-frame anomaly scores of an uploaded clip (multipart field `file`, or the raw body), on the
checkpoint's scale, calibrated on the clip's opening seconds, or with a camera's calibration."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from service.api.deps import ApiKey, AuthFirstRoute, ServicesDep
from service.api.schemas import STREAM_ID_PATTERN, ScoreResult
from service.api.services import Services
from service.clips.uploads import UploadTimeouts, receive_upload
from service.clips.video import ClipLimits, Watch, score_file
from service.errors import SCORE, ServiceError
from service.inference.calibration import CameraScale, CheckpointScale, ClipScale, OpeningScale

router = APIRouter(tags=["clips"], route_class=AuthFirstRoute)

BINARY = {"type": "string", "format": "binary"}
UPLOAD_DOC = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": BINARY}}},
    "application/octet-stream": {"schema": BINARY},
}}}


@dataclass(frozen=True)
class ScoreOptions:
    heatmaps: bool
    stride: int | None
    calibrate_seconds: float | None
    camera: str | None


@router.post("/score", dependencies=[ApiKey], openapi_extra=UPLOAD_DOC, response_model=None,
             responses={200: {"model": ScoreResult}, **SCORE})
async def score(request: Request, svc: ServicesDep,
                heatmaps: Annotated[bool, Query(description="add a coarse anomaly map per frame")] = False,
                stride: Annotated[int | None, Query(ge=1, description="default: the service's stride")] = None,
                calibrate_seconds: Annotated[float | None, Query(
                    gt=0, allow_inf_nan=False,
                    description="take the clip's first N seconds as normal footage of its scene: their mean/std "
                                "normalise the clip (default: the checkpoint's statistics)")] = None,
                camera: Annotated[str | None, Query(
                    pattern=STREAM_ID_PATTERN,
                    description="normalise with this camera's learned calibration (a clip of its scene)")] = None,
                ) -> JSONResponse:
    """Decode the clip with PyAV and score every frame the way `ocrgan eval` does."""
    started = time.perf_counter()
    s = svc.settings
    if calibrate_seconds is not None and camera is not None:
        svc.metrics.score_requests.labels("422").inc()
        return JSONResponse({"detail": "give calibrate_seconds or camera, not both: a clip is normalised by its own "
                                       "opening seconds or by a camera's calibration"}, status_code=422)
    slots = request.app.state.upload_slots
    if not slots.acquire(blocking=False):
        svc.metrics.score_requests.labels("429").inc()
        return JSONResponse({"detail": f"{s.max_concurrent_uploads} uploads are already in progress "
                                       "(OCRGAN_MAX_CONCURRENT_UPLOADS); retry later"},
                            status_code=429, headers={"Retry-After": "5"})
    try:
        return await _score(request, svc, ScoreOptions(heatmaps, stride, calibrate_seconds, camera), started)
    finally:
        slots.release()


def _scale(svc: Services, opts: ScoreOptions) -> ClipScale:
    """What normalises the clip; a camera's calibration is read when the upload has arrived (404, 409)."""
    if opts.camera is not None:
        view = svc.streams.view(opts.camera)
        return CameraScale.of(opts.camera, None if view is None else view.model_dump(exclude_unset=True))
    if opts.calibrate_seconds is not None:
        return OpeningScale(opts.calibrate_seconds)
    return CheckpointScale()


async def _score(request: Request, svc: Services, opts: ScoreOptions, started: float) -> JSONResponse:
    s = svc.settings
    fd, tmp = tempfile.mkstemp(prefix="ocrgan-upload-", suffix=".bin", dir=s.upload_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            await receive_upload(request, out, s.upload_max_bytes, UploadTimeouts.from_settings(s))
        if opts.stride is not None and opts.stride > svc.host.model.cfg.num_frames:
            raise ServiceError(422, f"stride must be in [1, {svc.host.model.cfg.num_frames}] for this model")
        limits = ClipLimits.from_settings(s)
        watch = Watch(s.upload_processing_timeout_seconds)
        result = await _while_connected(request, watch, request.app.state.clip_limiter, lambda: score_file(
            Path(tmp), svc.host, limits, opts.stride or svc.host.stride, opts.heatmaps, s.heatmap_grid,
            svc.scorer.run_clip, started, _scale(svc, opts), watch))
    except ServiceError as e:
        svc.metrics.score_requests.labels(str(e.status)).inc()
        return JSONResponse({"detail": e.message}, status_code=e.status)
    finally:
        os.unlink(tmp)
    svc.metrics.score_requests.labels("200").inc()
    # through its model, so the answer is what the OpenAPI document says (optional parts only when given)
    return JSONResponse(ScoreResult.model_validate(result).model_dump(mode="json", exclude_unset=True))


async def _while_connected(request: Request, watch: Watch, limiter: anyio.CapacityLimiter,
                           work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `work` in a worker thread (when `limiter` lets it); the watch stops it if the client disconnects."""
    watcher = asyncio.create_task(_cancel_when_gone(request, watch))  # a task, not a task group: errors unwrapped
    try:
        return await anyio.to_thread.run_sync(work, limiter=limiter)
    finally:
        watcher.cancel()


async def _cancel_when_gone(request: Request, watch: Watch) -> None:
    """Once the body is in, the next thing the server can receive is the client's disconnection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    watch.cancel()
