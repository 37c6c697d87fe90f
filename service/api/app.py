"""The app factory: routes, error handlers and a lifespan that starts and stops the services."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from model import CheckpointError
from service.api.routes import ops, page, score, streams, ws
from service.api.routes.page import STATIC
from service.api.schemas import live_messages_schema
from service.api.services import Services
from service.cameras.urls import redact
from service.errors import ServiceError
from service.inference.host import ModelHost
from service.logs import redact_logs
from service.publishing.backends import BackendUnavailable
from service.settings import Settings

log = logging.getLogger("ocrgan.service")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")

DESCRIPTION = """Per-frame anomaly scores of uploaded clips (`POST /score`) and of live cameras (`/streams`).

Routes that change something take the API key in the `X-API-Key` header when the service runs with
`OCRGAN_API_KEY` (security scheme `ApiKey`); reads are open. Every error answers `{"detail": "..."}`
(`ErrorResponse`); a request that does not match this document answers 422 with a list of field errors
(`ValidationErrorResponse`).

WebSockets (not described by OpenAPI paths): `GET /ws/streams` (every camera) and `GET /ws/streams/{stream_id}`
push JSON messages, each a `WebSocketMessage` (components below): first a `HelloMessage`, then
`ScoreMessage`, `EventMessage` and `StatusMessage`s (`GET /schemas/messages.json` serves the same schema on its
own). They take the key as the `api_key` query parameter or the header; the handshake is refused with 401/403
(key), 404 (unknown camera), 422 (invalid id) or 503 (too many clients)."""


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route answers at the request's path (Starlette's 405 names only the first route's)."""

    def answered(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] is Match.FULL for route in app.router.routes)

    return sorted(m for m in HTTP_METHODS if answered(m))


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the WebSocket messages' schemas added to its components."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, summary=app.summary, description=app.description,
                          routes=app.routes, tags=app.openapi_tags)
        ws = live_messages_schema(ref_template="#/components/schemas/{model}")
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in ws.pop("$defs", {}).items():
            schemas.setdefault(name, schema)
        schemas["WebSocketMessage"] = ws
        app.openapi_schema = doc
    return app.openapi_schema


def create_app(settings: Settings | None = None, host: ModelHost | None = None,
               on_startup: Callable[[Services], None] | None = None) -> FastAPI:
    """A new app; the model is loaded at start-up (unless `host` is given) and a bad checkpoint stops it.
    `on_startup` runs once the services are up (the demo registers its camera there)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact_logs()  # uvicorn has set up its handlers by now
        try:
            services = await anyio.to_thread.run_sync(Services.create, settings, host)
        except CheckpointError as e:
            log.error("cannot start: %s", e)
            raise
        app.state.services = services
        app.state.clip_limiter = anyio.CapacityLimiter(settings.max_concurrent_clips)
        app.state.upload_slots = threading.BoundedSemaphore(settings.max_concurrent_uploads)
        await anyio.to_thread.run_sync(services.start, asyncio.get_running_loop())
        if on_startup is not None:
            on_startup(services)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(services.stop)

    app = FastAPI(title="ocrgan-video", summary="Per-frame video anomaly scores for clips and live cameras",
                  description=DESCRIPTION, version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(app, request))}
        return await http_exception_handler(request, exc)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming the fields, without echoing the submitted values (a stream URL may carry a password)."""
        errors = [{"loc": list(e.get("loc", ())), "msg": redact(str(e.get("msg", ""))), "type": e.get("type")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(BackendUnavailable)
    async def backend_down(request: Request, exc: BackendUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"backend unavailable: {exc}"}, status_code=503)

    for module in (score, streams, ws, ops, page):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
