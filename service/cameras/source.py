"""One connection to a camera: PyAV over TCP with I/O timeouts, every connection made through a relay that holds it
to the URL policy (cameras/relay.py). Finite files (local, or over HTTP) are paced to real time by their timestamps
so they behave like live cameras; local files loop. Decoding is media.decode's, as for uploads and training."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av

from media.decode import FrameClock, VideoDecoder, frame_rate, open_input
from service.cameras.relay import Refused, Relay
from service.cameras.urls import StreamTarget, redact
from service.settings import Settings

log = logging.getLogger("ocrgan.streams")
MAX_AHEAD_S = 1.0  # a timestamp jump further ahead than this resynchronises the pacing clock
# FFmpeg's own I/O timeouts trail the watchdog by this much: they restart with every byte (RTSP keep-alive replies
# included), so they are only the backstop of a connection the watchdog cannot cut (a local file has no relay)
BACKSTOP_S = 2.0


UNREACHABLE = "could not connect to the camera"  # one message for refused, unreachable and timed out alike


class SourceError(Exception):
    """The connection failed or ended; the message is safe to show (credentials redacted, and no word on why a
    camera could not be reached, so that its errors cannot map the network)."""


@dataclass
class SourceOptions:
    open_timeout_s: float
    read_timeout_s: float  # the watchdog: no decoded frame for this long ends the connection
    settings: Settings  # the URL policy every connection is held to
    loop_files: bool = True


def _av_options(relay: Relay, opts: SourceOptions) -> dict[str, str]:
    us = str(int((opts.read_timeout_s + BACKSTOP_S) * 1e6))
    out = {"analyzeduration": "500000", "probesize": "262144", **relay.av_options()}
    if relay.rtsp:
        out |= {"timeout": us}
    else:
        out |= {"rw_timeout": us}
    return out


class Watchdog:
    """Ends a connection gone quiet: `kick()` at every sign of life; once `limit_s` pass without one, `expire` runs
    (once, on the watchdog's own thread), so that a read blocked inside FFmpeg ends on time rather than at FFmpeg's
    own timeouts, and frames the decoder still held cannot make a silent camera look alive."""

    def __init__(self, expire: Callable[[], None]) -> None:
        self.expire = expire
        self.limit_s = math.inf
        self.last = time.monotonic()
        self.fired = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, limit_s: float) -> None:
        """From now on, `limit_s` without a kick expires it (the first call starts the watchdog)."""
        with self._cond:
            self.limit_s = limit_s
            self.last = time.monotonic()
            self._cond.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ocrgan-watchdog", daemon=True)
            self._thread.start()

    def kick(self) -> None:
        self.last = time.monotonic()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                left = self.last + self.limit_s - time.monotonic()
                if left <= 0:
                    self.fired = True
                    break
                self._cond.wait(left)
        if self.fired:
            self.expire()


class FrameSource:
    """Context manager yielding (frame, time in seconds) pairs; raises SourceError when the stream ends/fails."""

    def __init__(self, target: StreamTarget, opts: SourceOptions, stop: threading.Event) -> None:
        self.target = target
        self.opts = opts
        self.stop = stop
        self.container = None
        self.relay: Relay | None = None
        self.decoder: VideoDecoder | None = None
        self.source_fps: float | None = None
        self.size: tuple[int, int] | None = None
        self.paced = False
        self.watchdog = Watchdog(self._cut)

    def __enter__(self) -> FrameSource:
        self.watchdog.arm(self.opts.open_timeout_s)
        try:
            self.container = self._open()
        except (av.FFmpegError, OSError, ValueError) as e:
            failure = self._failure("cannot open", e)
            self.__exit__()
            raise failure from e
        if not self.container.streams.video:
            self.__exit__()
            raise SourceError("the source has no video stream")
        stream = self.container.streams.video[0]
        self.source_fps = frame_rate(stream)
        self.size = (stream.codec_context.width, stream.codec_context.height)
        # live cameras deliver in real time already; a finite file (local or over HTTP) is paced by its timestamps
        self.paced = self.target.is_file or (not self.target.url.startswith("rtsp") and bool(self.container.duration))
        self.watchdog.arm(self.opts.read_timeout_s)
        return self

    def _cut(self) -> None:
        """The watchdog expired: end the connection, so that a read blocked in FFmpeg returns now."""
        if self.relay is not None:
            self.relay.close()

    def _open(self) -> av.container.InputContainer:
        if self.target.is_file:
            return open_input(self.target.url, timeout=(self.opts.open_timeout_s, self.opts.read_timeout_s))
        timeout = (self.opts.open_timeout_s + BACKSTOP_S, self.opts.read_timeout_s + BACKSTOP_S)
        try:  # the relay gives up connecting first, so that a camera that drops connections reads as unreachable
            self.relay = Relay(self.target.url, self.opts.settings, self.opts.open_timeout_s / 2)
        except Refused as e:
            raise SourceError(f"refused: {e}") from e
        return open_input(self.relay.url, options=_av_options(self.relay, self.opts), timeout=timeout)

    def _failure(self, what: str, e: Exception | None = None) -> SourceError:
        """Why the connection failed, as the API may show it: a hop the policy refused, the one message for a
        camera that could not be reached (however it failed), the watchdog, or what FFmpeg said (its words only: no
        URL, no address)."""
        if self.relay is not None and self.relay.refusal:
            return SourceError(f"refused: {self.relay.refusal}")
        if self.relay is not None and (self.relay.unreachable or not self.relay.reached):
            return SourceError(f"{what}: {UNREACHABLE}")
        if self.watchdog.fired:
            return self._expired()
        if e is None:
            return SourceError(what)
        reason = getattr(e, "strerror", None) or str(e)
        return SourceError(f"{what}: {redact(reason)}")

    @property
    def decode_errors(self) -> int:
        """Packets of garbage the decoder skipped on this connection."""
        return self.decoder.bad_packets if self.decoder is not None else 0

    def _expired(self) -> SourceError:
        if self.container is None:  # still opening
            return SourceError(f"cannot open: timed out after {self.opts.open_timeout_s:g}s")
        undecodable = f" ({self.decode_errors} undecodable packets)" if self.decode_errors else ""
        return SourceError(f"watchdog: no frame for {self.opts.read_timeout_s:g}s{undecodable}")

    def __exit__(self, *exc: object) -> None:
        self.watchdog.close()
        if self.container is not None:
            self.container.close()
            self.container = None
        if self.relay is not None:
            self.relay.close()

    def frames(self) -> Iterator[tuple[av.VideoFrame, float]]:
        w, h = self.size or (0, 0)
        # threads pay off on big frames only; garbage in one packet is skipped (and counted), as a camera's is
        self.decoder = VideoDecoder(self.container, threads=None if w * h >= 1280 * 720 else 1, skip_bad_packets=True,
                                    until=lambda: self.stop.is_set() or self.watchdog.fired)
        clock = FrameClock(self.source_fps)  # the file's own time; `offset` is added after each loop of a file
        pacing: tuple[float, float] | None = None  # (stream time, monotonic) of the pacing origin
        offset = 0.0
        while not self.stop.is_set():
            for frame in self._decode():
                t = clock(frame) + offset
                if self.paced:
                    pacing = self._pace(t, pacing)
                yield frame, t
                if self.stop.is_set():
                    return
            if self.watchdog.fired:
                raise self._expired()
            if not (self.target.is_file and self.opts.loop_files):
                raise self._failure("end of stream")
            offset += (clock.last or 0.0) + clock.step
            self.container.seek(0)

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Decoded frames. Only a frame decoded from a packet just received kicks the watchdog: those the decoder
        gives up when flushed at the end of a stream may be seconds old. Once the watchdog has expired (a silent
        socket, or packets without a decodable frame), nothing more is yielded."""
        try:
            for frame in self.decoder:
                if self.watchdog.fired:
                    break
                if self.decoder.received:
                    self.watchdog.kick()
                yield frame
            if self.watchdog.fired:
                raise self._expired()
        except (av.FFmpegError, OSError) as e:
            raise self._failure("read failed", e) from e

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
