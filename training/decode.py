"""Decode the frames of a sequence to uint8 arrays: grey (H, W) for luma models, RGB (H, W, 3) otherwise."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from media.decode import NoVideoStream, read_video
from training.sequences import DataError, Sequence


def read_image(path: Path, grey: bool) -> np.ndarray:
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag)
    if img is None:
        raise DataError(f"{path}: unreadable or not an image")
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def iter_video(path: Path, grey: bool) -> Iterator[np.ndarray]:
    """Frames of a video file, decoded and converted as uploads and cameras are (media.decode): upright, luma
    through the decoder's own conversion."""
    try:
        yield from read_video(path, grey)
    except (av.FFmpegError, NoVideoStream) as e:
        raise DataError(f"{path}: cannot decode video: {e}") from e


def iter_frames(seq: Sequence, grey: bool, start: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
    """Frames start .. start+count-1 of a sequence, all of one size (else a DataError naming the frame)."""
    stop = seq.length if count is None else min(seq.length, start + count)
    shape = None
    if seq.video is not None:
        lo, hi = seq.offset + start, seq.offset + stop
        source: Iterator[tuple[str, np.ndarray]] = (
            (f"{seq.video} frame {i}", f) for i, f in enumerate(itertools.islice(iter_video(seq.video, grey), hi))
            if i >= lo
        )
    else:
        source = ((str(p), read_image(p, grey)) for p in seq.frames[start:stop])
    n = 0
    for where, frame in source:
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise DataError(f"{where}: size {frame.shape} differs from the clip's {shape}")
        n += 1
        yield frame
    if n == 0:
        raise DataError(f"{seq.source()}: no frames could be decoded")
    if seq.video is None and n != stop - start:
        raise DataError(f"{seq.source()}: expected {stop - start} frames from {start}, decoded {n}")
