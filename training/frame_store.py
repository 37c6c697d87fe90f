"""All frames of a set of sequences, decoded once by parallel workers: uint8 frames at the working size as the
model sees them and as decoded (what the baselines see; the same unless rain is taken out), and, for a
model with the motion band, their optical flow; model input frames are assembled from them exactly as the
service's preprocessing makes them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from model import OCRGANConfig
from model.motion import FlowEstimator, luma, resize_area, shrink_flow
from model.preprocess import DROP_CONTEXT, DropFilter, appearance, flow_frame, working_frame
from model.windows import window_positions
from training.decode import iter_frames
from training.sequences import DataError, Sequence

log = logging.getLogger(__name__)
CHUNK = 32  # frames per decoding task for image sequences
MEMORY_SHARE = 0.5  # of the memory available when decoding starts, what the frames kept may take (at their peak,
ASSEMBLY_PEAK = 2  # while the decoded parts are joined, they are held twice)


def without_drops(frames: np.ndarray, cfg: OCRGANConfig) -> np.ndarray:
    """Consecutive uint8 frames of one sequence -> the same with rain taken out where `cfg.drops`."""
    if not cfg.drops:
        return frames
    drops = DropFilter()
    return np.stack([drops(f) for f in frames]) if len(frames) else frames


def motion_frames(decoded: list[np.ndarray], cfg: OCRGANConfig
                  ) -> tuple[np.ndarray, torch.Tensor, np.ndarray, np.ndarray | None]:
    """Consecutive decoded frames -> uint8 working-size frames as the model sees them, their float16 flow (N, 2,
    h, w) (the first frame's zero), the uint8 frames at the flow's size as decoded (what forgeries are made on
    and flow speed reads) and, where `cfg.drops`, the working-size frames as decoded: what SequencePreprocessor
    makes of them."""
    big = np.stack([flow_frame(f, cfg) for f in decoded])
    seen = without_drops(big, cfg)
    est = FlowEstimator(cfg.steady, cfg.gated)
    flow = np.stack([shrink_flow(est(luma(b)), cfg.flow_scale) for b in seen])
    plain = np.stack([resize_area(b, cfg.hw) for b in big]) if cfg.drops else None
    return (np.stack([resize_area(b, cfg.hw) for b in seen]), torch.from_numpy(flow).permute(0, 3, 1, 2).half(),
            big, plain)


class _Chunks(Dataset):
    """Decoding tasks: (sequence, start, count) -> what `motion_frames` makes of them (without the motion band,
    working-size frames as the model sees them and, where `cfg.drops`, as decoded); a chunk decodes the frame
    before it too, for the flow of its first, and DROP_CONTEXT more before that where drops are taken out (a
    frame's drops are what the frames before it did not show). The camera's motion (`steady`) is followed from frame
    to frame over the whole sequence, so a sequence is then decoded in one task, as a video always is."""

    def __init__(self, seqs: list[Sequence], cfg: OCRGANConfig) -> None:
        self.seqs = seqs
        self.cfg = cfg
        self.tasks = []
        for i, s in enumerate(seqs):
            whole = s.video is not None or (cfg.motion and cfg.steady)  # videos decode front to back in one task
            step = s.length if whole else CHUNK
            self.tasks += [(i, a, min(step, s.length - a)) for a in range(0, s.length, step)]

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, k: int) -> tuple[int, int, tuple | str]:
        i, start, count = self.tasks[k]
        lead = min(start, int(self.cfg.motion) + DROP_CONTEXT * int(self.cfg.drops))
        try:
            decoded = list(iter_frames(self.seqs[i], self.cfg.nc == 1, start - lead, count + lead))
        except DataError as e:
            return i, start, str(e)
        if not self.cfg.motion:
            plain = np.stack([working_frame(f, self.cfg) for f in decoded])
            return i, start, (without_drops(plain, self.cfg)[lead:], None, None,
                              plain[lead:] if self.cfg.drops else None)
        return i, start, tuple(part[lead:] if part is not None else None for part in motion_frames(decoded, self.cfg))


def frame_bytes(cfg: OCRGANConfig) -> int:
    """What a FrameStore keeps of one frame, in bytes: the working-size frame (twice where `cfg.drops`), and with the
    motion band its float16 flow and the frame at the flow's size."""
    c = 3 if cfg.nc == 3 else 1
    (h, w), (fh, fw) = cfg.hw, cfg.flow_hw
    return h * w * c * (2 if cfg.drops else 1) + (2 * h * w * 2 + fh * fw * c if cfg.motion else 0)


def available_memory() -> int | None:
    """Bytes this process can still allocate: the system's available memory, or its control group's limit less
    its use where that is smaller (a container); None where neither can be read."""
    known = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                known.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            known.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, min(known)) if known else None


def middle_share(length: int, total: int, budget: int | None, num_frames: int) -> tuple[int, int]:
    """Of a sequence of `length` frames among `total`, the part kept when at most `budget` frames are (None: all):
    (start, count), the middle of it, an even share of the budget, never under two windows' frames."""
    if not budget or total <= budget:
        return 0, length
    n = min(length, max(2 * num_frames, length * budget // total))
    return (length - n) // 2, n


def within_budget(seqs: list[Sequence], cfg: OCRGANConfig, max_frames: int | None = None,
                  available: int | None = None) -> list[Sequence]:
    """Normal sequences cut down, where they hold more, to `max_frames` frames and to what fits in memory
    (MEMORY_SHARE of `available`, by default available_memory(), at frame_bytes each, held twice while joined):
    the middle of each sequence, an even share of the budget each, never under two windows' frames. A recording
    of days would otherwise be decoded for hours and then end the process when memory runs out; what is left out
    is said."""
    total = sum(s.length for s in seqs)
    available = available_memory() if available is None else available
    fits = int(MEMORY_SHARE * available / (ASSEMBLY_PEAK * frame_bytes(cfg))) if available is not None else total
    budget = min(total, fits, max_frames or total)
    if budget >= total:
        return seqs
    out = []
    for s in seqs:
        start, n = middle_share(s.length, total, budget, cfg.num_frames)
        out.append(s.part(start, n) if n < s.length else s)
    why = (f"max_frames={max_frames}" if max_frames and max_frames <= fits
           else f"{available / 2**30:.1f} GiB of memory available, {frame_bytes(cfg)} bytes a frame")
    log.warning("the %d normal frames are more than %s allows: using %d, the middle of each sequence",
                total, why, sum(s.length for s in out))
    return out


class FrameStore:
    """raw: uint8 (N, h, w) or (N, h, w, 3) frames as the model sees them, sequences back to back; plain: the same
    as decoded (raw itself unless `cfg.drops`); with the motion band, flow: (N, 2, h, w) float16 and big: the uint8
    frames at the flow's size as decoded (else both None). Bad sequences raise, or are skipped with `skip_bad`."""

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
        raws, flows, bigs, plains = [], [], [], []
        for i, seq in enumerate(seqs):
            if i in bad:
                continue
            ordered = sorted(parts[i], key=lambda p: p[0])
            raws.append(np.concatenate([p[1] for p in ordered]))
            if cfg.motion:
                flows.append(torch.cat([p[2] for p in ordered]))
                bigs.append(np.concatenate([p[3] for p in ordered]))
            if cfg.drops:
                plains.append(np.concatenate([p[4] for p in ordered]))
            seq.length = len(raws[-1])  # a video's packet count is only an estimate
            self.sequences.append(seq)
        if not raws:
            raise DataError("no usable sequences: " + "; ".join(bad.values()))
        self._assemble(raws, flows, bigs, plains)

    def _assemble(self, raws: list[np.ndarray], flows: list[torch.Tensor], bigs: list[np.ndarray],
                  plains: list[np.ndarray]) -> None:
        self.raw = np.concatenate(raws)
        self.plain = np.concatenate(plains) if self.cfg.drops else self.raw
        self.flow = torch.cat(flows).share_memory_() if self.cfg.motion else None
        self.big = np.concatenate(bigs) if self.cfg.motion else None
        self.offsets = np.cumsum([0] + [len(r) for r in raws])

    @classmethod
    def from_frames(cls, cfg: OCRGANConfig, clips: list[np.ndarray], names: list[str] | None = None) -> FrameStore:
        """A store over frames already in memory: uint8 (N, H, W) or (N, H, W, 3) per sequence, any size."""
        store = cls.__new__(cls)
        store.cfg = cfg
        if cfg.motion:
            raws, flows, bigs, plains = (list(t) for t in zip(*(motion_frames(list(c), cfg) for c in clips),
                                                                strict=True))
        else:
            plains = [np.stack([working_frame(f, cfg) for f in c]) for c in clips]
            raws, flows, bigs = [without_drops(p, cfg) for p in plains], [], []
        store.sequences = [Sequence(n, length=len(r)) for n, r in zip(names or [f"c{i}" for i in range(len(raws))],
                                                                       raws, strict=True)]
        store._assemble(raws, flows, bigs, plains)
        return store

    def foreign(self, max_frames: int | None = None) -> FrameStore:
        """The same footage as a camera of another scene might show it: grey levels inverted and the picture
        mirrored, then made into model input as that camera's frames would be (its optical flow estimated on them),
        so that what the model learnt of the scene's appearance and layout no longer holds while its motion does
        (training/selection.py chooses the score's weights on both). `max_frames`: of long footage, the middle of
        each sequence, an even share of that many frames in all (never under two windows' frames)."""
        frames = self.big if self.big is not None else self.plain  # the largest this store keeps, as decoded
        lengths = np.diff(self.offsets)
        total = int(lengths.sum())
        clips = []
        for a, n in zip(self.offsets[:-1], lengths, strict=True):
            start, keep = middle_share(int(n), total, max_frames, self.cfg.num_frames)
            clips.append(255 - frames[a + start:a + start + keep, :, ::-1])
        return FrameStore.from_frames(self.cfg, clips, [s.name for s in self.sequences])

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

    def all_sequences(self) -> list[torch.Tensor]:
        """Every sequence's model input frames, in order."""
        return [self.sequence(i) for i in range(len(self.sequences))]

    def raw_sequence(self, i: int) -> np.ndarray:
        """uint8 working-size frames of sequence i as decoded (what the baselines see)."""
        return self.plain[self.offsets[i]: self.offsets[i + 1]]

    def big_sequence(self, i: int) -> np.ndarray:
        """uint8 frames of sequence i at the flow's size as decoded (with the motion band)."""
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
        """(nc, h, w) the mean appearance of every frame as decoded, in [-1, 1]."""
        mean = torch.from_numpy(self.plain.mean(0, dtype=np.float64)).float()  # (h, w) or (h, w, 3)
        mean = mean[None] if mean.ndim == 2 else mean.permute(2, 0, 1)
        return mean / 127.5 - 1.0
