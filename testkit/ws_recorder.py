"""A WebSocket client that records every message in a background thread (for tests that watch a
camera's life over many seconds while doing other things)."""

from __future__ import annotations

import json
import threading
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class WsRecorder:
    def __init__(self, url: str, keep: bool = True) -> None:
        self.ws = connect(url, open_timeout=10, max_size=None).__enter__()
        self.keep = keep  # False: only count them (a long run)
        self.count = 0
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="ws-recorder", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                message = json.loads(raw)
                with self._lock:
                    self.count += 1
                    if self.keep:
                        self.messages.append(message)
        except ConnectionClosed:
            pass

    def of(self, kind: str, stream_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if m["type"] == kind
                    and (stream_id is None or m.get("stream_id") == stream_id)]

    def states(self, stream_id: str) -> list[str]:
        """The status changes of one camera, in order (its first state is in the hello)."""
        return [m["state"] for m in self.of("status", stream_id)]

    def close(self) -> None:
        self.ws.close()
        self._thread.join(timeout=10)

    def __enter__(self) -> WsRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
