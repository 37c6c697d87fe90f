"""The backend interface: where the camera registry lives, where published messages go (history and
other subscribers), and how replicas share cameras. One implementation per file. Published messages are the
score, event and status models of service/api/schemas.py; a backend that stores them as JSON writes
model_dump_json() and reads them back with decode_message()."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from service.api.schemas import STREAM_MESSAGE, StreamMessage, validation_problems

log = logging.getLogger("ocrgan.backend")

Message = StreamMessage
Deliver = Callable[[list[Message]], None]


def decode_message(data: bytes | str) -> Message | None:
    """A published message read back from its JSON; None (and a warning) when it is not a live message."""
    try:
        return STREAM_MESSAGE.validate_json(data)
    except ValidationError as e:
        log.warning("ignoring a stored message that is not a live message (%s)", validation_problems(e))
        return None


class BackendUnavailable(Exception):
    """The backend cannot be reached right now (callers keep scoring and retry later)."""


class Backend(ABC):
    name: str
    replica_id: str
    shared = False  # other replicas read what this one writes (status, snapshots)

    def start(self, deliver: Deliver) -> None:
        """Begin background work; `deliver` receives messages published by other replicas."""
        return None

    def close(self) -> None:
        """Stop background work and release connections."""
        return None

    @abstractmethod
    def ping(self) -> bool:
        """True when reachable (for /readyz)."""

    # --- registry: the specs of registered cameras, as JSON-able dicts ----------------------------
    @abstractmethod
    def load_specs(self) -> dict[str, dict[str, Any]]: ...

    @abstractmethod
    def add_spec(self, spec: dict[str, Any]) -> bool:
        """Register a camera; False (and nothing changed) when its id is taken."""

    @abstractmethod
    def delete_spec(self, stream_id: str) -> None: ...

    # --- publishing ------------------------------------------------------------------------------
    @abstractmethod
    def publish(self, messages: list[Message]) -> None:
        """Record and fan out messages; never blocks the caller, never raises."""

    @abstractmethod
    def history(self, stream_id: str, since: float | None, limit: int) -> list[Message]:
        """Recent messages of a camera with timestamp > since, oldest first, at most `limit` (the newest)."""

    @abstractmethod
    def forget(self, stream_id: str) -> None:
        """Drop a deleted camera's history, status and snapshot."""

    # --- sharing cameras between replicas --------------------------------------------------------
    def heartbeat(self) -> int:
        """Announce this replica; returns how many replicas are alive."""
        return 1

    def claim(self, stream_id: str) -> bool:
        """Take or renew the lease on a camera; False when another replica holds it."""
        return True

    def release(self, stream_id: str) -> None:
        """Give up the lease (the camera was deleted, or is handed to another replica)."""
        return None

    def put_status(self, views: dict[str, dict[str, Any]]) -> None:
        """Share the status of the cameras this replica scores."""
        return None

    def get_status(self) -> dict[str, dict[str, Any]]:
        """Status of all cameras as last shared by their replicas."""
        return {}

    def put_snapshot(self, stream_id: str, jpeg: bytes) -> None:
        """Share a camera's latest snapshot."""
        return None

    def get_snapshot(self, stream_id: str) -> bytes | None:
        return None
