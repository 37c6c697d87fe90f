"""Backends: embedded (default, nothing to run) and Redis (shared by replicas)."""

from __future__ import annotations

from service.metrics import Metrics
from service.publishing.backends.base import Backend, BackendUnavailable
from service.settings import Settings


def make_backend(settings: Settings, metrics: Metrics, replica_id: str) -> Backend:
    if settings.redis_url:
        from service.publishing.backends.redis import RedisBackend

        return RedisBackend(settings.redis_url, settings.redis_prefix, settings.history_length,
                            settings.lease_seconds, replica_id, metrics)
    from service.publishing.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(settings.registry_path, settings.history_length, replica_id)


__all__ = ["Backend", "BackendUnavailable", "make_backend"]
