"""The shared decode loop: frames as FFmpeg itself shows them (upright, luma or RGB, any size), one scaler rule,
timestamps, and the same pictures whether a file is trained on, uploaded or played as a camera."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media.decode import (
    FrameClock,
    FrameConverter,
    NoVideoStream,
    VideoDecoder,
    open_input,
    read_video,
    upright_turns,
)
from model.motion import resize_area
from service.cameras.source import FrameSource, SourceError, SourceOptions
from service.cameras.urls import StreamTarget
from service.clips.video import Clip, ClipLimits
from service.settings import Settings
from tests.service import bad_media
from training.decode import iter_frames, iter_video
from training.sequences import DataError, Sequence
from training.video_files import count_frames

LIMITS = ClipLimits(max_frames=1000, max_pixels=4096 * 2304, max_side=4096)


def encode(path: Path, size: str, frames: int = 12, pix_fmt: str = "yuv420p", rotate: int | None = None) -> Path:
    """An H.264 clip of FFmpeg's moving colour test pattern at `size` (WxH; odd sides need 4:4:4), with the display
    matrix of a `rotate` degree turn when given (set on a copy of the packets, as FFmpeg 5 does for a `rotate` tag)."""
    plain = path.with_name(f"plain-{path.name}") if rotate is not None else path
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=25",
                    "-vf", f"scale={size.replace('x', ':')}", "-frames:v", str(frames), "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", pix_fmt, str(plain)], check=True)
    if rotate is not None:
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-c", "copy", "-metadata:s:v",
                        f"rotate={rotate}", str(path)], check=True)
    return path


def shown(path: Path, grey: bool, hw: tuple[int, int]) -> np.ndarray:
    """The (h, w) frames as the ffmpeg command line decodes them: turned by their display matrix, gray or rgb24."""
    fmt = "gray" if grey else "rgb24"
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", fmt, "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, *hw, *(() if grey else (3,)))


def upload_frames(path: Path, grey: bool) -> list[np.ndarray]:
    with Clip(path, grey, LIMITS) as clip:
        return list(clip.frames())


CLIPS = [  # (size, pix_fmt, rotate)
    ("96x64", "yuv420p", None),
    ("67x45", "yuv444p", None),  # odd sides
    ("96x64", "yuv420p", 90),
    ("67x45", "yuv444p", 270),
    ("96x64", "yuv420p", 180),
]
CLIP_IDS = [f"{s}-{p}-rot{r or 0}" for s, p, r in CLIPS]


@pytest.mark.parametrize(("degrees", "turns"), [(0, 0), (90, 1), (180, 2), (270, 3), (-90, 3), (360, 0), (45, 0)])
def test_upright_turns_are_quarter_turns_counterclockwise(degrees, turns):
    assert upright_turns(degrees) == turns


@pytest.mark.parametrize("grey", [True, False], ids=["grey", "colour"])
@pytest.mark.parametrize(("size", "pix_fmt", "rotate"), CLIPS, ids=CLIP_IDS)
def test_frames_are_what_ffmpeg_shows(tmp_path, size, pix_fmt, rotate, grey):
    """Every frame equals the ffmpeg command line's own decoding: same conversion, turned upright the same way."""
    path = encode(tmp_path / "clip.mp4", size, pix_fmt=pix_fmt, rotate=rotate)
    frames = np.stack(list(read_video(path, grey)))
    w, h = map(int, size.split("x"))
    upright = (w, h) if (rotate or 0) % 180 else (h, w)
    assert frames.shape == (12, *upright, *(() if grey else (3,))) and frames.dtype == np.uint8
    assert np.array_equal(frames, shown(path, grey, upright))


def test_colour_comes_out_rgb_and_grey_as_bt601_luma(tmp_path):
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    path = tmp_path / "colours.mkv"
    with av.open(str(path), "w") as c:  # lossless 4:4:4, so the colours survive encoding
        s = c.add_stream("libx264rgb", rate=25)
        s.width, s.height, s.pix_fmt, s.options = 48, 32, "rgb24", {"qp": "0", "preset": "ultrafast"}
        for rgb in colours:
            frame = av.VideoFrame.from_ndarray(np.broadcast_to(rgb, (32, 48, 3)).copy(), format="rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode())
    rgb = np.stack(list(read_video(path, grey=False)))
    assert np.array_equal(rgb[:, 16, 24], colours)
    luma = np.stack(list(read_video(path, grey=True)))[:, 16, 24].astype(int)
    expected = cv2.cvtColor(colours[None], cv2.COLOR_RGB2GRAY)[0].astype(int)  # 76, 150, 29, 255
    assert np.abs(luma - expected).max() <= 2


def test_decoder_threads_do_not_change_the_frames(tmp_path):
    path = encode(tmp_path / "clip.mp4", "96x64", frames=20)
    decoded = []
    for threads in (None, 1, 3):
        with open_input(path) as c:
            convert = FrameConverter(grey=True)
            decoded.append(np.stack([convert(f) for f in VideoDecoder(c, threads)]))
    assert len(decoded[0]) == 20
    assert all(np.array_equal(d, decoded[0]) for d in decoded[1:])


def test_until_ends_the_frames_between_packets(tmp_path):
    path = encode(tmp_path / "clip.mp4", "96x64", frames=20)
    got: list[av.VideoFrame] = []
    with open_input(path) as c:
        for f in VideoDecoder(c, threads=1, until=lambda: len(got) >= 3):  # one packet, one frame
            got.append(f)
    assert len(got) == 3


def test_frames_flushed_at_the_end_were_not_received(tmp_path):
    """A frame-threaded decoder hands its last frames over when flushed: they come from no packet just read."""
    path = encode(tmp_path / "clip.mp4", "96x64", frames=20)
    with open_input(path) as c:
        decoder = VideoDecoder(c, threads=4)
        received = [decoder.received for _ in decoder]
    assert len(received) == 20 and received[0] and not received[-1]


def test_a_packet_of_garbage_raises_or_is_counted(tmp_path):
    bad = bad_media.garbage_frames(tmp_path / "bad.mkv", encode(tmp_path / "good.mp4", "96x64", frames=8))
    with open_input(bad) as c, pytest.raises(av.InvalidDataError):
        list(VideoDecoder(c))
    with open_input(bad) as c:
        decoder = VideoDecoder(c, skip_bad_packets=True)
        assert list(decoder) == [] and decoder.bad_packets >= 1


def test_a_file_without_video_is_named(tmp_path):
    sound = bad_media.audio_only(tmp_path / "sound.m4a")
    with pytest.raises(NoVideoStream, match="no video stream"):
        list(read_video(sound, grey=True))
    with pytest.raises(DataError, match=r"sound\.m4a: cannot decode video: the file has no video stream"):
        list(iter_video(sound, grey=True))


def test_clock_uses_presentation_times_else_steps_one_frame_period(tmp_path):
    path = encode(tmp_path / "clip.mp4", "96x64", frames=5)
    with open_input(path) as c:
        clock = FrameClock(25.0)
        assert [round(clock(f), 6) for f in VideoDecoder(c)] == [0.0, 0.04, 0.08, 0.12, 0.16]
    untimed = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
    assert untimed.time is None
    clock = FrameClock(None)  # no declared rate: 25 fps
    assert [clock(untimed) for _ in range(3)] == pytest.approx([0.0, 0.04, 0.08])
    clock = FrameClock(10.0)
    clock.last = 3.0
    assert clock(untimed) == pytest.approx(3.1)


@pytest.mark.parametrize(("size", "rotate", "shrink_to", "out"), [
    ("320x192", None, (40, 60), (80, 120)),  # over twice the size: shrunk to twice it
    ("320x192", 90, (60, 40), (120, 80)),  # the same, upright: the coded frame is shrunk before it is turned
    ("100x64", None, (40, 60), (64, 100)),  # not over twice on both sides: left whole
], ids=["shrunk", "shrunk-rotated", "kept"])
def test_shrink_to_averages_areas_like_preprocess(tmp_path, size, rotate, shrink_to, out):
    """A camera's prescale is area averaging too: it is close to shrinking the whole frame by resize_area."""
    path = encode(tmp_path / "big.mp4", size, frames=3, rotate=rotate)
    whole = list(read_video(path, grey=True))
    with open_input(path) as c:
        convert = FrameConverter(grey=True, shrink_to=shrink_to)
        small = [convert(f) for f in VideoDecoder(c)]
    assert small[0].shape == out
    for a, b in zip(small, whole, strict=True):
        assert np.abs(a.astype(int) - resize_area(b, out).astype(int)).mean() < 2


def test_the_display_matrix_holds_until_restart(tmp_path):
    turned = encode(tmp_path / "turned.mp4", "96x64", frames=2, rotate=90)
    plain = encode(tmp_path / "plain.mp4", "96x64", frames=2)
    convert = FrameConverter(grey=True)
    with open_input(turned) as c:
        assert [convert(f).shape for f in VideoDecoder(c)] == [(96, 64)] * 2 and convert.rotation == 90
    convert.restart()
    with open_input(plain) as c:
        assert [convert(f).shape for f in VideoDecoder(c)] == [(64, 96)] * 2 and convert.rotation == 0


@pytest.mark.parametrize("grey", [True, False], ids=["grey", "colour"])
@pytest.mark.parametrize(("size", "pix_fmt", "rotate"), CLIPS, ids=CLIP_IDS)
def test_uploads_score_the_frames_training_decodes(tmp_path, size, pix_fmt, rotate, grey):
    """An upload is scored on exactly the pictures the evaluator trained and evaluated on, for every kind of file."""
    path = encode(tmp_path / "clip.mp4", size, frames=20, pix_fmt=pix_fmt, rotate=rotate)
    trained = list(iter_frames(Sequence("clip", video=path, length=count_frames(path)), grey))
    uploaded = upload_frames(path, grey)
    assert len(trained) == len(uploaded) == 20
    assert all(np.array_equal(a, b) for a, b in zip(trained, uploaded, strict=True))


def test_a_camera_playing_a_file_sees_the_uploaded_frames(tmp_path):
    """A file played as a camera (paced, not looped) gives the upload's pictures and timestamps."""
    path = encode(tmp_path / "clip.mp4", "67x45", frames=10, pix_fmt="yuv444p", rotate=90)
    with Clip(path, True, LIMITS) as clip:
        uploaded = list(clip.frames())
        times = clip.meta.timestamps
    opts = SourceOptions(5, 5, Settings(_env_file=None), loop_files=False)
    convert = FrameConverter(grey=True)
    seen, seen_at = [], []
    with FrameSource(StreamTarget(str(path), True), opts, threading.Event()) as source, \
            pytest.raises(SourceError, match="end of stream"):  # a file that is not looped ends its stream
        for frame, t in source.frames():
            seen.append(convert(frame))
            seen_at.append(t)
    assert len(seen) == len(uploaded) == 10 and seen[0].shape == (67, 45)
    assert all(np.array_equal(a, b) for a, b in zip(seen, uploaded, strict=True))
    assert seen_at == pytest.approx(times)
