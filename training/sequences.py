"""A sequence is one clip or video: where its frames come from, and its frame labels if known."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")


class DataError(ValueError):
    """Data that cannot be used, naming the file or folder at fault."""


@dataclass
class Sequence:
    name: str
    frames: list[Path] = field(default_factory=list)  # image files, in order (frame folders)
    video: Path | None = None  # or one video file
    labels: np.ndarray | None = None  # (N,) 0/1 per frame, test data only
    length: int = 0  # number of frames
    offset: int = 0  # first frame of a video that belongs to this sequence (a split of one video)

    def part(self, start: int, n: int, name: str | None = None) -> Sequence:
        """Its frames start .. start + n as a sequence of their own (unlabelled)."""
        return Sequence(name or self.name, self.frames[start:start + n], self.video, None, n,
                        self.offset + (start if self.video else 0))

    def source(self) -> str:
        return str(self.video) if self.video else str(self.frames[0].parent if self.frames else self.name)


def image_files(folder: Path) -> list[Path]:
    """Image files of a clip folder, in natural order (2.jpg before 10.jpg)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


def _natural_key(p: Path) -> tuple:
    import re

    return (*tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)), p.suffix)


def check_labels(seq: Sequence) -> None:
    if seq.labels is not None and len(seq.labels) != seq.length:
        raise DataError(
            f"{seq.source()}: {len(seq.labels)} labels for {seq.length} frames (labels and frames must match)"
        )


def iter_folders(root: Path) -> Iterator[Path]:
    yield from sorted((p for p in root.iterdir() if p.is_dir()), key=_natural_key)
