"""All frames of a set of sequences, decoded once by parallel workers: uint8 frames at the working size
(what the baselines see) and, for a model with the motion band, their optical flow; model input
frames are assembled from them exactly as the service's preprocessing makes them."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from model import OCRGANConfig
from model.motion import FlowEstimator, luma, resize_area, shrink_flow
from model.preprocess import appearance, flow_frame, working_frame
from model.windows import window_positions
from training.decode import iter_frames
from training.sequences import DataError, Sequence

log = logging.getLogger(__name__)
CHUNK = 32  # frames per decoding task for image sequences


def motion_frames(decoded: list[np.ndarray], cfg: OCRGANConfig) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """Consecutive decoded frames -> uint8 working-size frames, their float16 flow (N, 2, h, w) (the first
    frame's zero) and the uint8 frames the flow was computed on: what SequencePreprocessor makes of them."""
    big = np.stack([flow_frame(f, cfg) for f in decoded])
    est = FlowEstimator(cfg.steady)
    flow = np.stack([shrink_flow(est(luma(b)), cfg.flow_scale) for b in big])
    return np.stack([resize_area(b, cfg.hw) for b in big]), torch.from_numpy(flow).permute(0, 3, 1, 2).half(), big


class _Chunks(Dataset):
    """Decoding tasks: (sequence, start, count) -> uint8 working-size frames and, with the motion band,
    float16 flow (count, 2, h, w); a chunk decodes the frame before it too, for the flow of its first."""

    def __init__(self, seqs: list[Sequence], cfg: OCRGANConfig) -> None:
        self.seqs = seqs
        self.cfg = cfg
        self.tasks = []
        for i, s in enumerate(seqs):
            step = s.length if s.video is not None else CHUNK  # videos decode front to back in one task
            self.tasks += [(i, a, min(step, s.length - a)) for a in range(0, s.length, step)]

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, k: int) -> tuple[int, int, tuple[np.ndarray, torch.Tensor | None, np.ndarray | None] | str]:
        i, start, count = self.tasks[k]
        lead = 1 if start > 0 and self.cfg.motion else 0
        try:
            decoded = list(iter_frames(self.seqs[i], self.cfg.nc == 1, start - lead, count + lead))
        except DataError as e:
            return i, start, str(e)
        if not self.cfg.motion:
            return i, start, (np.stack([working_frame(f, self.cfg) for f in decoded]), None, None)
        frames, flow, big = motion_frames(decoded, self.cfg)
        return i, start, (frames[lead:], flow[lead:], big[lead:])


class FrameStore:
    """raw: uint8 (N, h, w) or (N, h, w, 3) frames, sequences back to back; with the motion band, flow:
    (N, 2, h, w) float16 and big: the uint8 frames at the flow's size (else both None). Bad sequences raise,
    or are skipped with `skip_bad`."""

    def __init__(self, seqs: list[Sequence], cfg: OCRGANConfig, workers: int = 2, skip_bad: bool = False,
                 desc: str = "decoding") -> None:
        self.cfg = cfg
        chunks = _Chunks(seqs, cfg)
        parts: dict[int, list[tuple]] = {i: [] for i in range(len(seqs))}
        bad: dict[int, str] = {}
        loader = DataLoader(chunks, batch_size=None, num_workers=workers, shuffle=False)
        for i, start, out in tqdm(loader, total=len(chunks), desc=desc, unit="chunk", leave=False):
            if isinstance(out, str):
                if not skip_bad:
                    raise DataError(out)
                bad.setdefault(i, out)
            else:
                parts[i].append((start, *out))
        for i, why in bad.items():
            log.warning("skipping sequence %s: %s", seqs[i].name, why)
        self.sequences: list[Sequence] = []
        raws, flows, bigs = [], [], []
        for i, seq in enumerate(seqs):
            if i in bad:
                continue
            ordered = sorted(parts[i], key=lambda p: p[0])
            raws.append(np.concatenate([p[1] for p in ordered]))
            if cfg.motion:
                flows.append(torch.cat([p[2] for p in ordered]))
                bigs.append(np.concatenate([p[3] for p in ordered]))
            seq.length = len(raws[-1])  # a video's packet count is only an estimate
            self.sequences.append(seq)
        if not raws:
            raise DataError("no usable sequences: " + "; ".join(bad.values()))
        self._assemble(raws, flows, bigs)

    def _assemble(self, raws: list[np.ndarray], flows: list[torch.Tensor], bigs: list[np.ndarray]) -> None:
        self.raw = np.concatenate(raws)
        self.flow = torch.cat(flows).share_memory_() if self.cfg.motion else None
        self.big = np.concatenate(bigs) if self.cfg.motion else None
        self.offsets = np.cumsum([0] + [len(r) for r in raws])

    @classmethod
    def from_frames(cls, cfg: OCRGANConfig, clips: list[np.ndarray], names: list[str] | None = None) -> FrameStore:
        """A store over frames already in memory: uint8 (N, H, W) or (N, H, W, 3) per sequence, any size."""
        store = cls.__new__(cls)
        store.cfg = cfg
        if cfg.motion:
            raws, flows, bigs = (list(t) for t in zip(*(motion_frames(list(c), cfg) for c in clips), strict=True))
        else:
            raws, flows, bigs = [np.stack([working_frame(f, cfg) for f in c]) for c in clips], [], []
        store.sequences = [Sequence(n, length=len(r)) for n, r in zip(names or [f"c{i}" for i in range(len(raws))],
                                                                       raws, strict=True)]
        store._assemble(raws, flows, bigs)
        return store

    def __len__(self) -> int:
        return len(self.raw)

    def frames(self, idx: np.ndarray | torch.Tensor | slice) -> torch.Tensor:
        """Model input frames (n, in_channels, h, w) float32 at positions `idx` of the store."""
        x = appearance(self.raw[idx], self.cfg.exposure)
        if self.flow is None:
            return x
        return torch.cat([x, self.flow[idx].float()], dim=1)

    def sequence(self, i: int) -> torch.Tensor:
        """(N_i, in_channels, h, w) model input frames of sequence i."""
        return self.frames(slice(int(self.offsets[i]), int(self.offsets[i + 1])))

    def raw_sequence(self, i: int) -> np.ndarray:
        """uint8 working-size frames of sequence i."""
        return self.raw[self.offsets[i]: self.offsets[i + 1]]

    def big_sequence(self, i: int) -> np.ndarray:
        """uint8 frames of sequence i at the flow's size (with the motion band)."""
        return self.big[self.offsets[i]: self.offsets[i + 1]]

    def window(self, i: int, end: int, num_frames: int) -> torch.Tensor:
        """(T, in_channels, H, W) float32: the window of sequence i that ends at frame `end` (model.windows), frame 0
        standing for those before the start, with zero flow (a repeated frame has not moved)."""
        idx = window_positions(end, num_frames)
        x = self.frames((idx + int(self.offsets[i])).numpy())
        if self.flow is not None:
            x[: max(0, num_frames - 1 - end), -2:] = 0.0
        return x

    def mean_frame(self) -> torch.Tensor:
        """(nc, h, w) the mean appearance of every frame, in [-1, 1]."""
        mean = torch.from_numpy(self.raw.mean(0, dtype=np.float64)).float()  # (h, w) or (h, w, 3)
        mean = mean[None] if mean.ndim == 2 else mean.permute(2, 0, 1)
        return mean / 127.5 - 1.0
