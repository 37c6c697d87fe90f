"""Everything one app runs, built and started in order by the lifespan, stopped in reverse."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from typing import Any

from service.api.schemas import StreamMessage
from service.cameras.manager import StreamManager
from service.cameras.worker import StreamState
from service.inference.host import ModelHost
from service.inference.scorer import Scorer
from service.metrics import Metrics
from service.publishing.backends import Backend, make_backend
from service.publishing.hub import Hub
from service.settings import Settings

log = logging.getLogger("ocrgan.service")


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Services:
    def __init__(self, settings: Settings, host: ModelHost) -> None:
        self.settings = settings
        self.host = host
        self.metrics = Metrics([str(s) for s in StreamState])
        self.metrics.anomaly_threshold.set(host.threshold)
        self.hub = Hub(self.metrics, settings.ws_queue)
        self.replica_id = settings.replica_id or default_replica_id()
        self.backend: Backend = make_backend(settings, self.metrics, self.replica_id)
        max_batch, clip_batch = host.batch_sizes(settings)
        self.scorer = Scorer(host, self.metrics, max_batch, settings.max_batch_wait_ms / 1000, clip_batch)
        self.streams = StreamManager(settings, host, self.scorer, self.backend, self.metrics, self.publish)

    @classmethod
    def create(cls, settings: Settings, host: ModelHost | None = None) -> Services:
        """Load the model (unless given) and build the parts; raises CheckpointError on a bad checkpoint."""
        return cls(settings, host or ModelHost.load(settings))

    def publish(self, messages: list[StreamMessage]) -> None:
        """From any thread: to local WebSocket clients, and to the backend (history, other replicas)."""
        self.hub.publish_threadsafe(messages)
        self.backend.publish(messages)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.hub.bind(loop)
        self.backend.start(self.hub.publish_threadsafe)
        self.scorer.start()
        self.streams.start()
        log.info("ready: backend %s, replica %s", self.backend.name, self.replica_id)

    def stop(self) -> None:
        self.streams.stop()
        self.scorer.stop()
        self.backend.close()

    def ready(self) -> dict[str, Any]:
        backend_ok = self.backend.ping()
        return {"model": True, "scorer": self.scorer.alive, "backend": self.backend.name,
                "backend_reachable": backend_ok, "ready": self.scorer.alive and backend_ok}
