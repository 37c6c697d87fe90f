"""Stream an uploaded clip (raw body or multipart field `file`) to a temp file, with a size cap and time limits."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO

import anyio
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.errors import ServiceError

MULTIPART_SLACK = 64 * 1024  # headers and small fields allowed beyond the file's own limit


class UploadError(ServiceError):
    """A rejected upload."""


class _Capped:
    """File writer that refuses to grow beyond `limit` bytes."""

    def __init__(self, out: BinaryIO, limit: int) -> None:
        self.out, self.limit, self.size = out, limit, 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise UploadError(413, f"upload is larger than the limit of {self.limit} bytes")
        self.out.write(data)


class _FilePart:
    """Multipart callbacks that keep only the part named `file`."""

    def __init__(self, sink: _Capped) -> None:
        self.sink = sink
        self.header_field = b""
        self.header_value = b""
        self.is_file = False
        self.found = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: setattr(self, "header_field", self.header_field + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "header_value", self.header_value + d[s:e]),
            "on_header_end": self._header_end,
            "on_part_data": self._data,
        }

    def _begin(self) -> None:
        self.is_file = False

    def _header_end(self) -> None:
        if self.header_field.lower() == b"content-disposition":
            _, params = parse_options_header(self.header_value)
            self.is_file = params.get(b"name") == b"file" and not self.found
            self.found = self.found or self.is_file
        self.header_field, self.header_value = b"", b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.is_file:
            self.sink.write(data[start:end])


@dataclass(frozen=True)
class UploadTimeouts:
    """When a slow upload is ended with 408: nothing sent for `idle` s; an average rate since it began below
    `min_rate` once `grace` s have passed; the whole body not in after `total` s. A client trickling a byte now
    and then is never idle: only the rate and the total bound how long it holds an upload slot."""

    idle: float = 30.0
    min_rate: float = 0.0  # bytes/s; 0 = no minimum
    grace: float = 10.0
    total: float = math.inf

    @classmethod
    def from_settings(cls, s) -> UploadTimeouts:
        return cls(s.upload_idle_timeout_seconds, s.upload_min_bytes_per_second, s.upload_rate_grace_seconds,
                   s.upload_timeout_seconds)

    def next_wait(self, elapsed: float, received: int) -> tuple[float, str]:
        """How long the next chunk may take, `elapsed` s into an upload of `received` bytes so far; and the reason
        given if it takes longer."""
        waits = [(self.idle, f"the upload sent nothing for {self.idle:g} s"),
                 (self.total - elapsed, f"the upload took longer than {self.total:g} s "
                                        "(OCRGAN_UPLOAD_TIMEOUT_SECONDS)")]
        if self.min_rate > 0:
            behind = max(self.grace, received / self.min_rate)  # when the average rate drops below min_rate
            waits.append((behind - elapsed, f"the upload is too slow: {received} bytes in {behind:.1f} s, less than "
                                            f"the minimum of {self.min_rate:g} bytes/s "
                                            "(OCRGAN_UPLOAD_MIN_BYTES_PER_SECOND)"))
        return min(waits)


async def _chunks(request: Request, timeouts: UploadTimeouts) -> AsyncIterator[bytes]:
    """The body's chunks; 408 when the client stalls, trickles or takes too long (UploadTimeouts)."""
    stream = request.stream().__aiter__()
    start, received = time.monotonic(), 0
    while True:
        wait, reason = timeouts.next_wait(time.monotonic() - start, received)
        if wait <= 0:
            raise UploadError(408, reason)
        try:
            with anyio.fail_after(wait):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as e:
            raise UploadError(408, reason) from e
        received += len(chunk)
        yield chunk


async def receive_upload(request: Request, out: BinaryIO, max_bytes: int,
                         timeouts: UploadTimeouts = UploadTimeouts()) -> int:
    """Write the clip to `out`; returns its size. Raises UploadError (413 too big, 408 stalled, trickling or
    too slow, 400/422 malformed)."""
    ctype, params = parse_options_header(request.headers.get("content-type"))
    multipart = ctype == b"multipart/form-data"
    limit = max_bytes + (MULTIPART_SLACK if multipart else 0)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UploadError(413, f"upload of {declared} bytes is larger than the limit of {max_bytes} bytes")
    sink = _Capped(out, max_bytes)
    body = _Capped(_Null(), limit)
    part = _FilePart(sink)
    parser = None
    if multipart:
        if b"boundary" not in params:
            raise UploadError(400, "multipart body without a boundary")
        parser = MultipartParser(params[b"boundary"], part.callbacks())
    try:
        async for chunk in _chunks(request, timeouts):
            body.write(chunk)
            if parser is not None:
                parser.write(chunk)
            else:
                sink.write(chunk)
    except ClientDisconnect as e:
        raise UploadError(400, "client disconnected during the upload") from e
    except UploadError:
        raise
    except Exception as e:  # a malformed multipart body
        raise UploadError(400, f"malformed multipart body: {e}") from e
    if parser is not None:
        parser.finalize()
        if not part.found:
            raise UploadError(422, "multipart body has no field named 'file'")
    if sink.size == 0:
        raise UploadError(422, "the upload is empty")
    out.flush()
    return sink.size


class _Null:
    def write(self, data: bytes) -> None:
        pass
