"""The original UCSD layout: `UCSDped{1,2}/{Train,Test}/<Clip>/<nnn>.tif`, ground truth in `UCSDped*.m`."""

from __future__ import annotations

import logging
from pathlib import Path

from training.labels import parse_ucsd_m, ranges_to_labels
from training.sequences import DataError, Sequence, check_labels, image_files, iter_folders

log = logging.getLogger(__name__)
SPLIT_DIRS = {"train": "Train", "test": "Test"}


def dataset_dir(root: Path) -> Path | None:
    """The UCSDped* folder: the root itself or its only UCSDped* child."""
    if (root / "Train").is_dir() or (root / "Test").is_dir():
        return root
    children = sorted(p for p in root.glob("UCSDped*") if p.is_dir())
    return children[0] if len(children) == 1 else None


def matches(root: Path) -> bool:
    return dataset_dir(root) is not None


def find(root: Path, split: str) -> list[Sequence]:
    ds = dataset_dir(root)
    if ds is None:
        raise DataError(f"{root}: not a UCSD dataset folder (no Train/ or Test/)")
    base = ds / SPLIT_DIRS[split]
    if not base.is_dir():
        raise DataError(f"{ds}: no {SPLIT_DIRS[split]}/ folder")
    folders = [f for f in iter_folders(base) if not f.name.endswith("_gt")]
    gt = None
    if split == "test":
        m_files = sorted(base.glob("UCSDped*.m")) or sorted(ds.glob("UCSDped*.m"))
        if not m_files:
            raise DataError(f"{base}: no UCSDped*.m ground-truth file")
        gt = parse_ucsd_m(m_files[0])
        if len(gt) != len(folders):
            raise DataError(f"{m_files[0]}: ground truth for {len(gt)} clips, but {base} has {len(folders)} clips")
    seqs = []
    for i, folder in enumerate(folders):
        files = image_files(folder)
        if not files:
            log.warning("skipping %s: no image files", folder)
            continue
        seq = Sequence(name=folder.name, frames=files, length=len(files))
        if gt is not None:
            seq.labels = ranges_to_labels(gt[i], len(files))
            check_labels(seq)
        seqs.append(seq)
    return seqs
