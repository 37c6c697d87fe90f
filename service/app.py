"""The app factory: routes, error handlers and a lifespan that starts and stops the services."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from model import CheckpointError
from service.backends import BackendUnavailable
from service.errors import ServiceError
from service.logs import redact_logs
from service.model_host import ModelHost
from service.routes import ops, page, score, streams, ws
from service.routes.page import STATIC
from service.services import Services
from service.settings import Settings
from service.urls import redact

log = logging.getLogger("ocrgan.service")


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
                  version="0.1.0", lifespan=lifespan)
    app.state.settings = settings

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
