"""Training windows over a FrameStore, with a synthetic forgery of each made in the loader workers."""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset

from model.augment import KINDS, forge_clip
from model.windows import window_ends
from training.frame_store import FrameStore

log = logging.getLogger(__name__)


def training_windows(store: FrameStore, stride: int) -> list[tuple[int, int]]:
    """(sequence, end frame) of every training window: the windows that would score each sequence at `stride`
    (model.windows.window_ends), so the first of a sequence repeat its first frame like a starting stream."""
    out = []
    for i, s in enumerate(store.sequences):
        if s.length < 2:
            log.warning("sequence %s has %d frame(s): too short to learn motion, skipped", s.name, s.length)
            continue
        out += [(i, e) for e, _ in window_ends(s.length, stride)]
    return out


class WindowDataset(Dataset):
    """Item k -> (clip (T, C, H, W), forged clip, (T,) altered-frame mask); the forgery depends only
    on (seed, epoch, k), so a resumed run sees the same data."""

    def __init__(self, store: FrameStore, ends: list[tuple[int, int]], num_frames: int, seed: int,
                 kinds: tuple[str, ...] = KINDS) -> None:
        self.store = store
        self.ends = ends
        self.num_frames = num_frames
        self.seed = seed
        self.kinds = kinds
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i, end = self.ends[k]
        clip = self.store.window(i, end, self.num_frames)
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + k)
        kind = self.kinds[int(torch.randint(0, len(self.kinds), (), generator=g))]
        forged, mask = forge_clip(clip, kind, g)
        return clip, forged, mask
