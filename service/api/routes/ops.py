"""Operations: liveness, readiness, Prometheus metrics, the served model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.deps import ServicesDep
from service.api.schemas import Health, Readiness, ServedModel

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None, responses={
    200: {"model": Readiness, "description": "ready"},
    503: {"model": Readiness, "description": "not ready: the scorer has stopped or the backend is unreachable"}})
def readyz(svc: ServicesDep) -> JSONResponse:
    """Model loaded, scorer running, backend reachable: 200, else 503."""
    state = svc.ready()
    return JSONResponse(state, status_code=200 if state["ready"] else 503)


@router.get("/metrics", response_class=PlainTextResponse, responses={200: {
    "description": "Prometheus text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics(svc: ServicesDep) -> PlainTextResponse:
    """Prometheus metrics (text exposition format)."""
    for sid, worker in list(svc.streams.workers.items()):
        svc.metrics.stream_fps.labels(sid).set(worker.measured_fps())
    return PlainTextResponse(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/model", response_model=None, responses={200: {"model": ServedModel}})
def model_info(svc: ServicesDep) -> dict[str, Any]:
    """The served checkpoint, how cameras are scored by default, the backend, this replica, and whether mutating
    routes need the API key."""
    host = svc.host
    return {**host.describe(), "camera_stride": host.camera_stride,
            "camera_scoring": host.scoring(host.camera_stride),
            "backend": svc.backend.name, "replica": svc.replica_id, "auth": svc.settings.api_key is not None}
