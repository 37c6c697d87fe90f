"""A folder of video files (one sequence each), decoded with PyAV; labels JSON keyed by file name. The split folders
may be `training/` and `testing/`, their `videos/` subfolders (ShanghaiTech) or `training_videos/` and
`testing_videos/` with pixel masks under `ground_truth_demo/` (CUHK Avenue)."""

from __future__ import annotations

import logging
from pathlib import Path

import av

from training.labels import LABEL_FILES, find_labels, labels_for
from training.sequences import VIDEO_SUFFIXES, DataError, Sequence, check_labels

log = logging.getLogger(__name__)
SPLIT_DIRS = {"train": "training", "test": "testing"}


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def _split_dirs(root: Path, split: str) -> tuple[Path, ...]:
    name = SPLIT_DIRS[split]
    return root / name / "videos", root / name, root / f"{name}_videos"


def split_videos(root: Path, split: str) -> Path | None:
    """The folder holding the videos of `split` under `root`, if one of its split folders holds any."""
    return next((d for d in _split_dirs(root, split) if d.is_dir() and _videos(d)), None)


def split_dir(root: Path, split: str) -> Path:
    return split_videos(root, split) or root


def matches(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() in VIDEO_SUFFIXES
    return bool(root.is_dir() and _videos(root)) or any(split_videos(root, s) for s in SPLIT_DIRS)


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
        found = find_labels(list(dict.fromkeys([folder, root, root / SPLIT_DIRS[split]])))
        if found is None:
            raise DataError(f"{folder}: test videos need {LABEL_FILES}, keyed by file name")
        labels = found
    seqs = []
    for f in files:
        n = count_frames(f)
        if n == 0:
            log.warning("skipping %s: no frames", f)
            continue
        seq = Sequence(name=f.name, video=f, length=n)
        if split == "test":
            seq.labels = labels_for(labels, f.name)
            if seq.labels is None:
                raise DataError(f"{f}: no labels for {f.name!r}")
            check_labels(seq)
        seqs.append(seq)
    return seqs
