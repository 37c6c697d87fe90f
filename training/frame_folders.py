"""Layout `<root>/{training,testing}/frames/<clip>/<frame>.{jpg,png,tif}` with `labels.json`."""

from __future__ import annotations

import logging
from pathlib import Path

from training.labels import read_labels_json
from training.sequences import DataError, Sequence, check_labels, image_files, iter_folders

log = logging.getLogger(__name__)
SPLIT_DIRS = {"train": "training", "test": "testing"}


def matches(root: Path) -> bool:
    return any((root / d / "frames").is_dir() for d in SPLIT_DIRS.values())


def find(root: Path, split: str) -> list[Sequence]:
    base = root / SPLIT_DIRS[split] / "frames"
    if not base.is_dir():
        raise DataError(f"{root}: no {SPLIT_DIRS[split]}/frames folder")
    labels = {}
    if split == "test":
        label_file = next((p for p in (root / "labels.json", root / "testing" / "labels.json") if p.is_file()), None)
        if label_file is None:
            raise DataError(f"{root}: test frames need a labels.json (clip name -> 0/1 per frame)")
        labels = read_labels_json(label_file)
    seqs = []
    for folder in iter_folders(base):
        files = image_files(folder)
        if not files:
            log.warning("skipping %s: no image files", folder)
            continue
        seq = Sequence(name=folder.name, frames=files, length=len(files))
        if split == "test":
            if folder.name not in labels:
                raise DataError(f"{folder}: no labels for clip {folder.name!r} in labels.json")
            seq.labels = labels[folder.name]
            check_labels(seq)
        seqs.append(seq)
    return seqs
