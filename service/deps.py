"""Request dependencies: the app's services and the API-key guard."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket

from service.services import Services

API_KEY_HEADER = "X-API-Key"


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def key_problem(expected: str | None, given: str | None) -> tuple[int, str] | None:
    """None when `given` is acceptable, else (HTTP status, reason)."""
    if expected is None:
        return None
    if not given:
        return 401, f"missing API key (header {API_KEY_HEADER})"
    if not secrets.compare_digest(given.encode(), expected.encode()):
        return 403, "invalid API key"
    return None


def require_api_key(request: Request) -> None:
    """Guard for mutating routes: the X-API-Key header must match OCRGAN_API_KEY when one is set."""
    problem = key_problem(request.app.state.settings.api_key, request.headers.get(API_KEY_HEADER))
    if problem:
        raise HTTPException(problem[0], problem[1], headers={"WWW-Authenticate": "ApiKey"})


def websocket_key_problem(ws: WebSocket) -> tuple[int, str] | None:
    """WebSockets take the key as the `api_key` query parameter (browsers cannot set headers) or the header."""
    given = ws.query_params.get("api_key") or ws.headers.get(API_KEY_HEADER)
    return key_problem(ws.app.state.settings.api_key, given)


ApiKey = Depends(require_api_key)
