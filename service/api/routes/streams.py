"""Cameras: register, list, inspect, delete; recent scores and the latest snapshot."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from service.api.deps import ApiKey, AuthFirstRoute, ServicesDep
from service.api.schemas import STREAM_ID_PATTERN, ErrorResponse, StreamList, StreamScores, StreamSpec, StreamView
from service.errors import BACKEND_DOWN, STREAM_READ, STREAM_WRITE, UNKNOWN_STREAM, UNREADABLE_BODY, ServiceError

router = APIRouter(prefix="/streams", tags=["streams"], route_class=AuthFirstRoute)

StreamId = Annotated[str, Path(pattern=STREAM_ID_PATTERN, examples=["gate"])]


def _dump(view: StreamView) -> dict[str, Any]:
    """A view as JSON with the fields it was given (a camera no replica scores yet has only its registration's)."""
    return view.model_dump(mode="json", exclude_unset=True)


def _known(svc, stream_id: str) -> None:
    if svc.streams.view(stream_id) is None:
        raise ServiceError(404, f"no stream {stream_id!r}")


@router.post("", status_code=201, dependencies=[ApiKey], response_model=None,
             responses={201: {"model": StreamView, "description": "registered"}, **UNREADABLE_BODY, **STREAM_WRITE,
                        409: {"model": ErrorResponse, "description": "a stream with this id exists"}})
def add_stream(spec: StreamSpec, svc: ServicesDep) -> dict[str, Any]:
    """Register a camera; it is scored by this replica or another one holding its lease."""
    svc.streams.validate(spec)
    return _dump(svc.streams.add(spec))


@router.get("", response_model=None, responses={200: {"model": StreamList}, **BACKEND_DOWN})
def list_streams(svc: ServicesDep) -> dict[str, Any]:
    return {"streams": [_dump(v) for v in svc.streams.views()], "replica": svc.replica_id}


@router.get("/{stream_id}", response_model=None, responses={200: {"model": StreamView}, **STREAM_READ})
def get_stream(stream_id: StreamId, svc: ServicesDep) -> dict[str, Any]:
    view = svc.streams.view(stream_id)
    if view is None:
        raise ServiceError(404, f"no stream {stream_id!r}")
    return _dump(view)


@router.delete("/{stream_id}", status_code=204, dependencies=[ApiKey], response_class=Response,
               responses={204: {"description": "stopped and forgotten"}, **STREAM_WRITE, **UNKNOWN_STREAM})
def delete_stream(stream_id: StreamId, svc: ServicesDep) -> Response:
    if not svc.streams.remove(stream_id):
        raise ServiceError(404, f"no stream {stream_id!r}")
    return Response(status_code=204)


@router.get("/{stream_id}/scores", response_model=None, responses={200: {"model": StreamScores}, **STREAM_READ})
def stream_scores(stream_id: StreamId, svc: ServicesDep,
                  since: Annotated[float | None, Query(description="unix time; only later messages")] = None,
                  limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
                  events: Annotated[bool, Query(description="include event and status messages")] = False,
                  ) -> dict[str, Any]:
    """Recent published scores, oldest first (the newest `limit` of those after `since`)."""
    _known(svc, stream_id)
    items = svc.backend.history(stream_id, since, limit if events else 10 * limit)
    if not events:
        items = [m for m in items if m.type == "score"][-limit:]
    return {"stream_id": stream_id, "items": [m.model_dump(mode="json") for m in items]}


@router.get("/{stream_id}/snapshot.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "a JPEG"}, **STREAM_READ})
def snapshot(stream_id: StreamId, svc: ServicesDep) -> Response:
    """The latest frame with the anomaly heatmap blended over it."""
    _known(svc, stream_id)
    jpeg = svc.streams.snapshot(stream_id)
    if jpeg is None:
        raise ServiceError(404, f"stream {stream_id!r} has no frame yet")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
