"""Operations: liveness, readiness, Prometheus metrics, the served model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import ServicesDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: ServicesDep) -> JSONResponse:
    """Model loaded, scorer running, backend reachable: 200, else 503."""
    state = svc.ready()
    return JSONResponse(state, status_code=200 if state["ready"] else 503)


@router.get("/metrics")
def metrics(svc: ServicesDep) -> Response:
    for sid, worker in list(svc.streams.workers.items()):
        svc.metrics.stream_fps.labels(sid).set(worker.measured_fps())
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/model")
def model_info(svc: ServicesDep) -> dict[str, Any]:
    return {**svc.host.describe(), "backend": svc.backend.name, "replica": svc.replica_id,
            "auth": svc.settings.api_key is not None}
