"""A folder of video files (one sequence each), decoded with PyAV; labels JSON keyed by file name."""

from __future__ import annotations

import logging
from pathlib import Path

import av

from training.labels import read_labels_json
from training.sequences import VIDEO_SUFFIXES, DataError, Sequence, check_labels

log = logging.getLogger(__name__)
SPLIT_DIRS = {"train": "training", "test": "testing"}


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def split_dir(root: Path, split: str) -> Path:
    sub = root / SPLIT_DIRS[split]
    return sub if sub.is_dir() else root


def matches(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() in VIDEO_SUFFIXES
    return any(_videos(d) for d in (root, *(root / s for s in SPLIT_DIRS.values())) if d.is_dir())


def count_frames(path: Path) -> int:
    """Frames in a video, counted from its packets (no decoding)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            stream = container.streams.video[0]
            return sum(1 for pkt in container.demux(stream) if pkt.size)
    except av.FFmpegError as e:
        raise DataError(f"{path}: unreadable video: {e}") from e


def find(root: Path, split: str) -> list[Sequence]:
    if root.is_file():
        files = [root]
        folder = root.parent
    else:
        folder = split_dir(root, split)
        files = _videos(folder)
    if not files:
        raise DataError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    labels = {}
    if split == "test":
        label_file = next((p for p in (folder / "labels.json", root / "labels.json") if p.is_file()), None)
        if label_file is None:
            raise DataError(f"{folder}: test videos need a labels.json keyed by file name")
        labels = read_labels_json(label_file)
    seqs = []
    for f in files:
        n = count_frames(f)
        if n == 0:
            log.warning("skipping %s: no frames", f)
            continue
        seq = Sequence(name=f.name, video=f, length=n)
        if split == "test":
            key = f.name if f.name in labels else f.stem
            if key not in labels:
                raise DataError(f"{f}: no labels for {f.name!r} in labels.json")
            seq.labels = labels[key]
            check_labels(seq)
        seqs.append(seq)
    return seqs
