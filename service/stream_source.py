"""One connection to a camera: PyAV over TCP with I/O timeouts. Finite files (local, or over HTTP) are
paced to real time by their timestamps so they behave like live cameras; local files loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av

from service.urls import StreamTarget, redact

log = logging.getLogger("ocrgan.streams")
MAX_AHEAD_S = 1.0  # a timestamp jump further ahead than this resynchronises the pacing clock


class SourceError(Exception):
    """The connection failed or ended; the message is safe to show (credentials redacted)."""


@dataclass
class SourceOptions:
    open_timeout_s: float
    read_timeout_s: float  # the watchdog: no packet for this long ends the connection
    loop_files: bool = True


def _av_options(target: StreamTarget, opts: SourceOptions) -> dict[str, str]:
    if target.is_file:
        return {}
    us = str(int(opts.read_timeout_s * 1e6))
    out = {"analyzeduration": "500000", "probesize": "262144"}
    if target.url.startswith(("rtsp://", "rtsps://")):
        out |= {"rtsp_transport": "tcp", "timeout": us}
    else:
        out |= {"rw_timeout": us}
    return out


class FrameSource:
    """Context manager yielding (frame, time in seconds) pairs; raises SourceError when the stream ends/fails."""

    def __init__(self, target: StreamTarget, opts: SourceOptions, stop: threading.Event) -> None:
        self.target = target
        self.opts = opts
        self.stop = stop
        self.container = None
        self.decode_errors = 0
        self.source_fps: float | None = None
        self.size: tuple[int, int] | None = None
        self.paced = False

    def __enter__(self) -> FrameSource:
        try:
            self.container = av.open(self.target.url, options=_av_options(self.target, self.opts),
                                     timeout=(self.opts.open_timeout_s, self.opts.read_timeout_s))
        except (av.FFmpegError, OSError, ValueError) as e:
            raise SourceError(f"cannot open: {redact(str(e))}") from e
        if not self.container.streams.video:
            self.container.close()
            raise SourceError("the source has no video stream")
        stream = self.container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.source_fps = float(rate) if rate else None
        self.size = (stream.codec_context.width, stream.codec_context.height)
        # live cameras deliver in real time already; a finite file (local or over HTTP) is paced by its timestamps
        self.paced = self.target.is_file or (not self.target.url.startswith("rtsp") and bool(self.container.duration))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.container is not None:
            self.container.close()

    def frames(self) -> Iterator[tuple[av.VideoFrame, float]]:
        stream = self.container.streams.video[0]
        w, h = self.size or (0, 0)
        stream.thread_type = "AUTO" if w * h >= 1280 * 720 else "NONE"  # threads pay off on big frames only
        clock: tuple[float, float] | None = None  # (stream time, monotonic) of the pacing origin
        offset = 0.0  # added to timestamps after each loop of a file
        last_t = 0.0
        while not self.stop.is_set():
            for frame in self._decode(stream):
                t = self._time(frame, last_t) + offset
                if self.paced:
                    clock = self._pace(t, clock)
                last_t = t - offset
                yield frame, t
                if self.stop.is_set():
                    return
            if not (self.target.is_file and self.opts.loop_files):
                raise SourceError("end of stream")
            offset += last_t + 1.0 / (self.source_fps or 25.0)
            self.container.seek(0)

    def _decode(self, stream) -> Iterator[av.VideoFrame]:
        """Decoded frames; the watchdog ends a connection that delivers packets but no frame for too long
        (a stalled socket is ended by the read timeout instead)."""
        last_frame = time.monotonic()
        try:
            for packet in self.container.demux(stream):
                try:
                    for frame in packet.decode():
                        last_frame = time.monotonic()
                        yield frame
                except av.InvalidDataError:
                    self.decode_errors += 1  # garbage in one packet
                if self.stop.is_set():
                    return
                if time.monotonic() - last_frame > self.opts.read_timeout_s:
                    raise SourceError(f"watchdog: no decodable frame for {self.opts.read_timeout_s:g}s "
                                      f"({self.decode_errors} undecodable packets)")
        except (av.FFmpegError, OSError) as e:
            raise SourceError(f"read failed: {redact(str(e))}") from e

    def _time(self, frame: av.VideoFrame, last_t: float) -> float:
        if frame.time is not None:
            return float(frame.time)
        return last_t + 1.0 / (self.source_fps or 25.0)

    def _pace(self, t: float, clock: tuple[float, float] | None) -> tuple[float, float]:
        """Sleep until stream time t is due on the wall clock; returns the (possibly reset) origin."""
        now = time.monotonic()
        if clock is None:
            return (t, now)
        ahead = (clock[1] + t - clock[0]) - now
        if ahead > MAX_AHEAD_S or ahead < -5.0:  # a timestamp jump, or far behind after a stall
            return (t, now)
        if ahead > 0.002:
            self.stop.wait(ahead)
        return clock
