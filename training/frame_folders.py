"""Layout `<root>/{training,testing}/frames/<clip>/<frame>.{jpg,png,tif}` with `labels.json` (or ShanghaiTech's
`testing/test_frame_mask/<clip>.npy`); a split without frame folders may be a folder of videos (ShanghaiTech's
`training/videos/`)."""

from __future__ import annotations

import logging
from pathlib import Path

from training import video_files
from training.labels import LABEL_FILES, find_labels, labels_for
from training.sequences import DataError, Sequence, check_labels, image_files, iter_folders

log = logging.getLogger(__name__)
SPLIT_DIRS = {"train": "training", "test": "testing"}


def matches(root: Path) -> bool:
    return any((root / d / "frames").is_dir() for d in SPLIT_DIRS.values())


def find(root: Path, split: str) -> list[Sequence]:
    base = root / SPLIT_DIRS[split] / "frames"
    if not base.is_dir():
        if video_files.split_videos(root, split):
            return video_files.find(root, split)
        raise DataError(f"{root}: no {SPLIT_DIRS[split]}/frames folder")
    labels = {}
    if split == "test":
        found = find_labels([root, root / "testing"])
        if found is None:
            raise DataError(f"{root}: test frames need {LABEL_FILES}")
        labels = found
    seqs = []
    for folder in iter_folders(base):
        files = image_files(folder)
        if not files:
            log.warning("skipping %s: no image files", folder)
            continue
        seq = Sequence(name=folder.name, frames=files, length=len(files))
        if split == "test":
            seq.labels = labels_for(labels, folder.name)
            if seq.labels is None:
                raise DataError(f"{folder}: no labels for clip {folder.name!r}")
            check_labels(seq)
        seqs.append(seq)
    return seqs
