"""The embedded backend: registry in a local JSON file, history in memory; nothing else to run."""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any

from model.files import atomic_write, stale_temp_files
from service.publishing.backends.base import Backend, Message

log = logging.getLogger("ocrgan.backend")


class EmbeddedBackend(Backend):
    name = "embedded"

    def __init__(self, registry_path: Path, history_length: int, replica_id: str) -> None:
        self.path = Path(registry_path)
        self.history_length = history_length
        self.replica_id = replica_id
        self._lock = threading.Lock()
        self._history: dict[str, deque[Message]] = {}
        self._remove_stale_temp_files()

    def _remove_stale_temp_files(self) -> None:
        """A process killed while writing the registry leaves its temp file behind (the registry is whole)."""
        for stale in stale_temp_files(self.path):
            stale.unlink(missing_ok=True)

    def ping(self) -> bool:
        return True

    # --- registry --------------------------------------------------------------------------------
    def load_specs(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return self._read()

    def add_spec(self, spec: dict[str, Any]) -> bool:
        with self._lock:
            specs = self._read()
            if spec["id"] in specs:
                return False
            specs[spec["id"]] = spec
            self._write(specs)
            return True

    def delete_spec(self, stream_id: str) -> None:
        with self._lock:
            specs = self._read()
            if specs.pop(stream_id, None) is not None:
                self._write(specs)

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return dict(data["streams"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("registry %s is unreadable (%s); starting without its cameras", self.path, e)
            return {}

    def _write(self, specs: dict[str, dict[str, Any]]) -> None:
        """Atomically replace the registry file."""
        atomic_write(self.path, json.dumps({"version": 1, "streams": specs}, indent=2, sort_keys=True).encode())

    # --- publishing ------------------------------------------------------------------------------
    def publish(self, messages: list[Message]) -> None:
        with self._lock:
            for m in messages:
                self._history.setdefault(m.stream_id, deque(maxlen=self.history_length)).append(m)

    def history(self, stream_id: str, since: float | None, limit: int) -> list[Message]:
        with self._lock:
            items = list(self._history.get(stream_id, ()))
        if since is not None:
            items = [m for m in items if m.timestamp > since]
        return items[-limit:] if limit else []

    def forget(self, stream_id: str) -> None:
        with self._lock:
            self._history.pop(stream_id, None)
