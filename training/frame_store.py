"""All frames of the training sequences, decoded once by parallel workers and kept preprocessed."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from model import OCRGANConfig, preprocess
from training.decode import iter_frames
from training.sequences import DataError, Sequence

log = logging.getLogger(__name__)
CHUNK = 32  # frames per decoding task for image sequences


class _Chunks(Dataset):
    """Decoding tasks: (sequence, start, count) -> preprocessed frames of the store's dtype."""

    def __init__(self, seqs: list[Sequence], cfg: OCRGANConfig, dtype: torch.dtype) -> None:
        self.seqs = seqs
        self.cfg = cfg
        self.dtype = dtype
        self.tasks = []
        for i, s in enumerate(seqs):
            step = s.length if s.video is not None else CHUNK  # videos decode front to back in one task
            self.tasks += [(i, a, min(step, s.length - a)) for a in range(0, s.length, step)]

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, k: int) -> tuple[int, int, torch.Tensor | str]:
        i, start, count = self.tasks[k]
        try:
            frames = np.stack(list(iter_frames(self.seqs[i], self.cfg.nc == 1, start, count)))
        except DataError as e:
            return i, start, str(e)
        return i, start, preprocess(frames, self.cfg).to(self.dtype)


class FrameStore:
    """frames: (N, C, H, W) in [-1, 1], sequences back to back; bad sequences raise or are skipped.
    float16 halves the memory of training data; evaluation keeps float32, exactly what a caller of
    preprocess() (the service) scores."""

    def __init__(self, seqs: list[Sequence], cfg: OCRGANConfig, workers: int = 2, skip_bad: bool = False,
                 desc: str = "decoding", dtype: torch.dtype = torch.float16) -> None:
        self.cfg = cfg
        chunks = _Chunks(seqs, cfg, dtype)
        parts: dict[int, list[tuple[int, torch.Tensor]]] = {i: [] for i in range(len(seqs))}
        bad: dict[int, str] = {}
        loader = DataLoader(chunks, batch_size=None, num_workers=workers, shuffle=False)
        for i, start, out in tqdm(loader, total=len(chunks), desc=desc, unit="chunk", leave=False):
            if isinstance(out, str):
                if not skip_bad:
                    raise DataError(out)
                bad.setdefault(i, out)
            else:
                parts[i].append((start, out))
        for i, why in bad.items():
            log.warning("skipping sequence %s: %s", seqs[i].name, why)
        self.sequences: list[Sequence] = []
        tensors = []
        for i, seq in enumerate(seqs):
            if i in bad:
                continue
            frames = torch.cat([t for _, t in sorted(parts[i], key=lambda p: p[0])])
            seq.length = len(frames)  # a video's packet count is only an estimate
            self.sequences.append(seq)
            tensors.append(frames)
        if not tensors:
            raise DataError("no usable sequences: " + "; ".join(bad.values()))
        self.frames = torch.cat(tensors).share_memory_()
        self.offsets = np.cumsum([0] + [s.length for s in self.sequences])

    def sequence(self, i: int) -> torch.Tensor:
        """(N_i, C, H, W) frames of sequence i."""
        return self.frames[self.offsets[i]: self.offsets[i + 1]]

    def window(self, i: int, end: int, num_frames: int) -> torch.Tensor:
        """(T, C, H, W) float32: frames end-T+1 .. end of sequence i, frame 0 repeated before the start."""
        idx = torch.arange(end - num_frames + 1, end + 1).clamp(min=0) + int(self.offsets[i])
        return self.frames[idx].float()
