"""WebSockets: /ws/streams (every camera) and /ws/streams/{id} push score, event and status messages; the JSON
schema of those messages at /schemas/messages.json."""

from __future__ import annotations

import re
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from service.api.deps import websocket_key_problem
from service.api.schemas import STREAM_ID_PATTERN, HelloMessage, live_messages_schema

router = APIRouter(tags=["live"])


async def _refuse(ws: WebSocket, status: int, reason: str) -> None:
    """Answer the handshake with an HTTP error where the server supports it, else close (HTTP 403)."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"detail": reason}, status_code=status))
    else:
        await ws.close(code=1008, reason=reason)


async def _serve(ws: WebSocket, stream_id: str | None) -> None:
    problem = websocket_key_problem(ws)
    if problem:
        await _refuse(ws, *problem)
        return
    svc = ws.app.state.services
    if len(svc.hub.clients) >= svc.settings.max_ws_clients:
        await _refuse(ws, 503, f"{svc.settings.max_ws_clients} WebSocket clients are connected "
                               "(OCRGAN_MAX_WS_CLIENTS); retry later")
        return
    if stream_id is not None and not re.fullmatch(STREAM_ID_PATTERN, stream_id):
        await _refuse(ws, 422, "invalid stream id")
        return
    views = await anyio.to_thread.run_sync(svc.streams.views)
    if stream_id is not None:
        views = [v for v in views if v.id == stream_id]
        if not views:
            await _refuse(ws, 404, f"no stream {stream_id!r}")
            return
    await ws.accept()
    hello = HelloMessage(type="hello", replica=svc.replica_id, threshold=svc.host.threshold, streams=views)
    await svc.hub.serve(ws, stream_id, hello)


@router.websocket("/ws/streams")
async def all_streams(ws: WebSocket) -> None:
    await _serve(ws, None)


@router.websocket("/ws/streams/{stream_id}")
async def one_stream(ws: WebSocket, stream_id: str) -> None:
    await _serve(ws, stream_id)


MESSAGES_SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", **live_messages_schema()}


@router.get("/schemas/messages.json", responses={200: {"description": "a JSON schema (draft 2020-12)"}})
def messages_schema() -> dict[str, Any]:
    """The JSON schema of the messages pushed on the WebSockets (WebSocketMessage, as in the OpenAPI components);
    the items of GET /streams/{id}/scores and the Redis backend's live channels and history are its score, event
    and status messages."""
    return MESSAGES_SCHEMA
