"""WebSocket fan-out: every client has a bounded queue; a slow client loses its oldest messages (counted, and
told in the next message's `dropped`) and never delays the others or the scorer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from starlette.websockets import WebSocket, WebSocketDisconnect

from service.api.schemas import HelloMessage, StreamMessage, WebSocketMessage
from service.metrics import Metrics

log = logging.getLogger("ocrgan.ws")


class Client:
    def __init__(self, stream_id: str | None, size: int) -> None:
        self.stream_id = stream_id  # None = every camera
        self.queue: deque[WebSocketMessage] = deque(maxlen=size)
        self.ready = asyncio.Event()
        self.dropped = 0

    def offer(self, message: WebSocketMessage) -> bool:
        """Queue a message; False when the oldest one had to go."""
        full = len(self.queue) == self.queue.maxlen
        self.queue.append(message)
        self.ready.set()
        if full:
            self.dropped += 1
        return not full


class Hub:
    def __init__(self, metrics: Metrics, queue_size: int) -> None:
        self.metrics = metrics
        self.queue_size = queue_size
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def publish_threadsafe(self, messages: list[StreamMessage]) -> None:
        """From any thread: hand messages to the event loop (no-op before start-up or after shutdown)."""
        loop = self.loop
        if loop is None or loop.is_closed() or not self.clients:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(self._dispatch, messages)

    def _dispatch(self, messages: list[StreamMessage]) -> None:
        for client in self.clients:
            dropped = 0
            for m in messages:
                if (client.stream_id is None or m.stream_id == client.stream_id) and not client.offer(m):
                    dropped += 1
            if dropped:
                self.metrics.ws_dropped.inc(dropped)

    async def serve(self, ws: WebSocket, stream_id: str | None, hello: HelloMessage) -> None:
        """Run one accepted client until it disconnects."""
        client = Client(stream_id, self.queue_size)
        self.clients.add(client)
        self.metrics.ws_clients.set(len(self.clients))
        client.offer(hello)
        sender = asyncio.create_task(self._send(ws, client))
        receiver = asyncio.create_task(self._receive(ws))
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, receiver):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.clients.discard(client)
            self.metrics.ws_clients.set(len(self.clients))

    async def _send(self, ws: WebSocket, client: Client) -> None:
        while True:
            await client.ready.wait()
            client.ready.clear()
            while client.queue:
                message = client.queue.popleft()
                if client.dropped:
                    message = message.model_copy(update={"dropped": client.dropped})  # it missed some
                    client.dropped = 0
                # exclude_unset: a view holds the fields it was given (a camera nobody scores yet, only its spec)
                await ws.send_text(message.model_dump_json(exclude_unset=True))

    async def _receive(self, ws: WebSocket) -> None:
        """Read (and ignore) what the client sends, to notice when it goes away."""
        with contextlib.suppress(WebSocketDisconnect):
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass
