"""Find the sequences of a dataset path, whichever of the three supported layouts it uses."""

from __future__ import annotations

from pathlib import Path

from training import frame_folders, ucsd, video_files
from training.sequences import DataError, Sequence

LAYOUTS = {"frames": frame_folders, "ucsd": ucsd, "videos": video_files}


def detect_layout(root: Path) -> str:
    for name, module in LAYOUTS.items():
        if module.matches(root):
            return name
    raise DataError(
        f"{root}: unrecognised dataset layout; expected training/frames/<clip>/..., "
        "UCSDped*/Train/<Clip>/..., or a folder of video files"
    )


def find_sequences(root: str | Path, split: str) -> list[Sequence]:
    """Sequences of `split` ("train" or "test") under `root`."""
    p = Path(root)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    seqs = LAYOUTS[detect_layout(p)].find(p, split)
    if not seqs:
        raise DataError(f"{p}: no {split} sequences found")
    return seqs
