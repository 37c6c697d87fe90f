"""Video in, model pictures out: the one decode loop and the one conversion that training, uploads and cameras share.

A frame is converted to what model.preprocess() takes, uint8 luma (H, W) or RGB (H, W, 3) at the coded size, by one
swscale context per video (the same conversion in every caller, so an upload scores as the evaluator did), then
turned upright as the stream's display matrix says. Resizing to the model's working size is preprocess()'s alone
(area averaging); a camera may have the scaler shrink a big frame to twice that size first, by area averaging too.
What each caller does around the loop (upload budgets, a camera's watchdog and pacing) stays with the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.reformatter import VideoReformatter

DEFAULT_FPS = 25.0  # the frame period assumed for a stream that declares no rate


class NoVideoStream(LookupError):
    """The container holds no video stream."""


def open_input(url: str | Path, options: dict[str, str] | None = None,
               timeout: float | tuple[float, float] | None = None) -> InputContainer:
    """PyAV open for reading; metadata that is not UTF-8 is replaced rather than refused (it is never scored)."""
    return av.open(str(url), options=options or {}, timeout=timeout, metadata_errors="replace")


def frame_rate(stream: av.video.stream.VideoStream) -> float | None:
    """The stream's frames per second, averaged or guessed by FFmpeg; None when it gives none."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def upright_turns(degrees: int) -> int:
    """Quarter turns counterclockwise (np.rot90's k) for a display matrix's rotation; 0 when it is not a multiple of
    90 degrees, as FFmpeg's own autorotation leaves such a frame."""
    turns, rest = divmod(degrees, 90)
    return turns % 4 if rest == 0 else 0


class VideoDecoder:
    """The first video stream's frames in decode order, read packet by packet; iterating again after a seek decodes
    on from there. `threads`: None lets FFmpeg choose (one per core), 1 decodes in the calling thread, n uses n.
    A packet of garbage raises av.InvalidDataError, or is counted in `bad_packets` when `skip_bad_packets`;
    `until` is asked after every packet and ends the frames quietly once it says so."""

    def __init__(self, container: InputContainer, threads: int | None = None, skip_bad_packets: bool = False,
                 until: Callable[[], bool] | None = None) -> None:
        if not container.streams.video:
            raise NoVideoStream("the file has no video stream")
        self.container = container
        self.stream = container.streams.video[0]
        self.stream.thread_type = "NONE" if threads == 1 else "AUTO"  # before the codec opens, at the first packet
        if threads is not None and threads > 1:
            self.stream.thread_count = threads
        self.skip_bad_packets = skip_bad_packets
        self.until = until
        self.bad_packets = 0
        self.received = False  # the frame last yielded came from a packet just read, not the flush at the end

    def __iter__(self) -> Iterator[av.VideoFrame]:
        for packet in self.container.demux(self.stream):
            self.received = packet.size > 0  # the last packet of a stream is empty: it flushes the decoder
            try:
                yield from packet.decode()
            except av.InvalidDataError:
                if not self.skip_bad_packets:
                    raise
                self.bad_packets += 1
            if self.until is not None and self.until():
                return


class FrameConverter:
    """Decoded frames of one video -> uint8 luma (H, W) or RGB (H, W, 3), upright. The display matrix of the first
    frame converted holds for the video (restart() for another); one swscale context serves every frame
    (frame.to_ndarray(format=...) would build one per frame). With `shrink_to` (upright (h, w)), a frame over twice
    that size on both sides comes out at twice it, area-averaged by the scaler: a camera's 1080p frames cost less to
    preprocess."""

    def __init__(self, grey: bool, shrink_to: tuple[int, int] | None = None) -> None:
        self.format = "gray" if grey else "rgb24"
        self.shrink_to = shrink_to
        self.rotation: int | None = None  # degrees counterclockwise the frames are turned; None until the first
        self._scaler = VideoReformatter()

    def restart(self) -> None:
        """The next frame starts another video: its display matrix is read anew."""
        self.rotation = None

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if self.rotation is None:
            self.rotation = upright_turns(frame.rotation) * 90
        turns = self.rotation // 90
        image = self._reformat(frame, turns).to_ndarray()
        return np.ascontiguousarray(np.rot90(image, turns)) if turns else image

    def _reformat(self, frame: av.VideoFrame, turns: int) -> av.VideoFrame:
        if self.shrink_to is not None:
            h, w = self.shrink_to if turns % 2 == 0 else self.shrink_to[::-1]  # the coded frame is not yet turned
            if frame.width > 2 * w and frame.height > 2 * h:
                return self._scaler.reformat(frame, width=2 * w, height=2 * h, format=self.format,
                                             interpolation="AREA")
        return self._scaler.reformat(frame, format=self.format)


class FrameClock:
    """Each frame's time in seconds, in stream time: its presentation time, or one frame period after the frame
    before when it has none (0 for a first frame without one)."""

    def __init__(self, fps: float | None) -> None:
        self.step = 1.0 / (fps or DEFAULT_FPS)
        self.last: float | None = None  # the time of the frame before

    def __call__(self, frame: av.VideoFrame) -> float:
        before = -self.step if self.last is None else self.last
        t = float(frame.time) if frame.time is not None else before + self.step
        self.last = t
        return t


def read_video(path: str | Path, grey: bool, threads: int | None = None) -> Iterator[np.ndarray]:
    """Every frame of a video file, converted by a FrameConverter, in decode order. Raises NoVideoStream, or PyAV's
    errors for a file FFmpeg cannot open or decode."""
    with open_input(path) as container:
        convert = FrameConverter(grey)
        for frame in VideoDecoder(container, threads):
            yield convert(frame)
