"""Request dependencies: the app's services and the API-key guard."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, Security, WebSocket
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader

from service.api.services import Services

API_KEY_HEADER = "X-API-Key"

# declares the key in the OpenAPI document (components.securitySchemes.ApiKey); the check is require_api_key's
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER, scheme_name="ApiKey", auto_error=False,
    description="Required by the routes that change something (POST /score, POST and DELETE /streams) when the "
                "service runs with OCRGAN_API_KEY: 401 without it, 403 when wrong. WebSockets also take it as the "
                "`api_key` query parameter. Reads are open.")


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


def check_api_key(request: Request) -> None:
    """401/403 unless the X-API-Key header matches OCRGAN_API_KEY (when one is set)."""
    problem = key_problem(request.app.state.settings.api_key, request.headers.get(API_KEY_HEADER))
    if problem:
        raise HTTPException(problem[0], problem[1], headers={"WWW-Authenticate": "ApiKey"})


def require_api_key(request: Request, _key: Annotated[str | None, Security(api_key_header)]) -> None:
    """Guard for mutating routes (declared as `dependencies=[ApiKey]`). AuthFirstRoute checks it before the
    request is parsed; this dependency checks it again wherever the route class is not used."""
    check_api_key(request)


def websocket_key_problem(ws: WebSocket) -> tuple[int, str] | None:
    """WebSockets take the key as the `api_key` query parameter (browsers cannot set headers) or the header."""
    given = ws.query_params.get("api_key") or ws.headers.get(API_KEY_HEADER)
    return key_problem(ws.app.state.settings.api_key, given)


ApiKey = Depends(require_api_key)


class AuthFirstRoute(APIRoute):
    """A route whose API key, when it requires one, is checked before anything of the request is read or
    validated: a client without the key learns 401/403, not whether its body or parameters would pass."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not any(d.call is require_api_key for d in self.dependant.dependencies):
            return handler

        async def guarded(request: Request) -> Response:
            check_api_key(request)
            return await handler(request)

        return guarded
