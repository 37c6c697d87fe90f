"""Scoring a sequence frame by frame from cached per-frame features: the work on each frame is done once.

The model is causal (every objective but "reconstruct"): a frame's encoder features depend on that frame and the
few before it that its generator input reads (`OCRGANVideo.context_frames`: the previous frame where the generator
sees the clip shifted, and those the input fusion reads). So each sequence keeps:
- the last `context_frames` preprocessed frames, which give a new frame its past;
- per attention block, the keys and values of the last frames before the new one that its query may see
  (`TemporalModule.key_spans`: T-1, or 3 for the hierarchical attention's 4-frame sequence level), two kinds, keys
  and values (a graph reads each where it lies);
- per U-Net level whose temporal module reads earlier frames than the new one beyond the attention's keys and values
  (`TemporalModule.frames_read`: the bottleneck's temporal convolution reads 2, adaptive pooling all T-1), their
  encoder features (before the temporal modules).

When frames arrive, the encoder runs on them only; the temporal modules run for each one's position over the cached
keys and values of its T-frame window (read in place, model.temporal.attention.attend_latest) and the few frames'
features they read; the decoder, the discriminator features and the cues are computed for the new frames only.

A frame's score equals that of the full T-frame window ending at it whose frames are given their true past, i.e.
`score_detailed(frames[t-T+1-c .. t], positions=slice(T-1, T), context=c)` with c = context_frames; a sequence
behaves as if its first frame had been shown before it began, as in model.windows.
"""

from __future__ import annotations

from collections import deque

import torch

from model.ocrgan import OCRGANVideo, Scored
from model.temporal import Known, TemporalModule, to_tokens

KEYS, VALUES = 0, 1  # the two kinds of per-frame tensor an attention block keeps, with the block: (block, KEYS)


class FrameRing:
    """The last T per-frame tensors of one kind, frames along dim 0, each written twice (at slot s and s + T of a
    2T buffer) so that the T most recent are always one contiguous view, oldest first: a new frame costs one write,
    not a copy of its predecessors."""

    def __init__(self, first: torch.Tensor, t: int) -> None:
        self.t = t
        self.buf = first.unsqueeze(0).expand(2 * t, *first.shape).clone()  # the first frame stands for those before
        self.next = 0  # the slot the next frame goes to

    def push(self, frame: torch.Tensor) -> torch.Tensor:
        """Add a frame; the T most recent, oldest first (a view, valid until the next push)."""
        s, t = self.next, self.t
        self.buf[s].copy_(frame)
        self.buf[s + t].copy_(frame)
        self.next = (s + 1) % t
        return self.buf.narrow(0, self.next, t)

    def past(self) -> torch.Tensor:
        """The T-1 most recent frames, oldest first: the past of the next frame (a contiguous view)."""
        return self.buf.narrow(0, self.next + 1, self.t - 1)


class FrameStream:
    """What one sequence (a camera, a clip) keeps between its frames."""

    def __init__(self, model: OCRGANVideo) -> None:
        if not model.cfg.causal:
            raise ValueError(f'objective "{model.cfg.objective}" sees later frames: it cannot score frame by frame')
        self.context = model.context_frames
        self.raw: deque[torch.Tensor] = deque(maxlen=max(self.context, 1))  # the last frames, (C_in, H, W) each
        self.rings: dict[object, FrameRing] = {}  # per kind of per-frame tensor (frame_keys), its last frames'
        self.spans = frame_spans(model)  # per kind, how many of its last frames a new frame's scoring reads
        self.count = 0  # frames scored so far

    def reset(self) -> None:
        """Forget the past after a discontinuity (a reconnect): the next frame starts a new sequence."""
        self.raw.clear()
        self.rings.clear()

    def inputs(self, frames: torch.Tensor) -> torch.Tensor:
        """(n, C_in, H, W) new frames -> (n, context + 1, C_in, H, W): each with the frames before it."""
        out = []
        for f in frames:
            if not self.raw:
                self.raw.extend([f] * self.raw.maxlen)
            past = list(self.raw)[len(self.raw) - self.context:] if self.context else []
            out.append(torch.stack([*past, f]))
            self.raw.append(f)
        return torch.stack(out)

    def windows(self, key: object, new: torch.Tensor) -> torch.Tensor:
        """A per-frame tensor of the new frames (n, ...) -> each one's stack of its kind's span S (frame_spans: T
        frames, or the last few that a level's temporal module reads), oldest first: a level's features (n, S, C,
        H, W); an attention block's keys or values (n, P, h, d) frames first, the n stacks along dim 1, (S, n*P, h, d),
        as the block reads them (model.temporal.attention.attend_latest). At a sequence's start its first frame
        stands for the frames before it."""
        ring = self.rings.get(key)
        if ring is None:
            ring = self.rings[key] = FrameRing(new[0], self.spans[key])
        level = isinstance(key, int)
        if len(new) == 1:
            view = ring.push(new[0])
            return view.unsqueeze(0) if level else view
        stacks = [ring.push(f).clone() for f in new]
        return torch.stack(stacks) if level else torch.cat(stacks, 1)

    def past(self, key: object) -> torch.Tensor:
        """The frames before the next one of a kind of per-frame tensor (frame_keys) that its scoring reads, (S-1,
        ...) for the kind's span S, oldest first; only once the sequence has begun (rings filled by a first
        frame)."""
        return self.rings[key].past()

    def push(self, key: object, frame: torch.Tensor) -> None:
        """Keep a scored frame's per-frame tensor of a kind (without its shape's frame axis)."""
        self.rings[key].push(frame)


def frame_spans(model: OCRGANVideo) -> dict[object, int]:
    """The kinds of per-frame tensor a sequence keeps, in order, each with its span (how many of its last frames a
    new frame's scoring reads, the new one included): each level's encoder features (by its index), but of the idle
    levels (nothing reads their skips) and of those whose temporal module reads no frame before the new one but
    through its attention blocks; then the level's attention blocks' keys and values, of the frames the newest
    frame's query may see (TemporalModule.key_spans; each block's keys as (block, KEYS), its values as (block,
    VALUES))."""
    t = model.cfg.num_frames
    out: dict[object, int] = {}
    for level, temporal in enumerate(model.generator.temporal):
        if level in model.generator.idle_levels:
            continue
        span = temporal.frames_read(1, t) if isinstance(temporal, TemporalModule) else t
        if span > 1:
            out[level] = span
        for block, seen in (temporal.key_spans(t) if isinstance(temporal, TemporalModule) else {}).items():
            out.update({(block, KEYS): seen, (block, VALUES): seen})
    return out


def frame_keys(model: OCRGANVideo) -> list[object]:
    """The kinds of per-frame tensor a sequence keeps, in order (frame_spans)."""
    return list(frame_spans(model))


def frame_tensors(model: OCRGANVideo, clip: torch.Tensor) -> tuple[list[torch.Tensor], dict[object, torch.Tensor],
                                                                   torch.Tensor, torch.Tensor]:
    """The per-frame work on new frames (N, c + 1, C_in, H, W), each with its c frames of context: per level the
    encoder features (N, C, H, W); per kind of frame_keys its tensor (the level's features, or an attention block's
    keys or values by head (N, P, h, d)); and the new frames' appearance bands (N, 1, C, H, W) each."""
    c = clip.shape[1] - 1
    streams, lap, res = model.streams(clip)
    levels = [x[:, 0] for x in model.generator.encode_frames(streams, context=c)]
    kept = frame_spans(model)
    per_frame: dict[object, torch.Tensor] = {}
    for level, (temporal, x) in enumerate(zip(model.generator.temporal, levels, strict=True)):
        if level in model.generator.idle_levels:
            continue
        if level in kept:
            per_frame[level] = x
        blocks = temporal.attentions() if isinstance(temporal, TemporalModule) else []
        if blocks:
            tok = to_tokens(temporal.token_grid(x[:, None]))  # (N*h*w, 1, C)
            for block in blocks:  # (N, h*w, heads, C / heads) each
                known = Known.of(block.frame_kv(tok).reshape(len(x), -1, tok.shape[-1] * 2), block.heads)
                per_frame[block, KEYS], per_frame[block, VALUES] = known.k[0], known.v[0]
    return levels, per_frame, lap[:, c:], res[:, c:]


def score_stacked(model: OCRGANVideo, clip: torch.Tensor, bands: tuple[torch.Tensor, torch.Tensor],
                  windows: list[torch.Tensor], kv: dict[object, list[Known]], heatmap: bool = False) -> Scored:
    """The scores of the new frames (N, c + 1, C_in, H, W) from each one's stacks: per level (N, S, C, H, W) of its
    span S (frame_spans; a level without one (N, 1, C, H, W)) and per attention block its parts (Known);
    `bands` the new frames' appearance bands (frame_tensors). Each field (1, N): the frames of a pass as one
    sequence, which changes nothing but the shape (the cues are per frame)."""
    skips = model.generator.mix(windows, last=1, kv=kv)  # per level (N, 1, C, H, W): the newest frames'
    fake = model.generator.decode(skips)
    c = clip.shape[1] - 1
    gen = model.generated(clip[:, c:], *bands, fake, skips, slice(None))
    for name in vars(gen):
        v = getattr(gen, name)
        if v is not None:
            setattr(gen, name, v.transpose(0, 1))
    return model.score_generated(gen, heatmap)


@torch.no_grad()
def score_frames(model: OCRGANVideo, items: list[tuple[FrameStream, torch.Tensor]],
                 heatmap: bool = False) -> list[Scored]:
    """Score new frames of any number of sequences in one pass: `items` holds each sequence's state and its new
    frames (n_i, C_in, H, W) in order; returns per item the Scored of its frames (each field (1, n_i), the maps
    (1, n_i, k, H, W))."""
    if not items:
        return []
    device = next(model.parameters()).device
    clip = torch.cat([s.inputs(f.to(device)) for s, f in items])  # (N, c + 1, C_in, H, W)
    levels, per_frame, lap, res = frame_tensors(model, clip)
    sizes = [len(f) for _, f in items]
    stacks: dict[object, list[torch.Tensor]] = {k: [] for k in per_frame}
    a = 0
    for (state, _), n in zip(items, sizes, strict=True):
        for key, x in per_frame.items():  # features (n, C, H, W) by frame; keys and values (n, P, 2C) by token
            stacks[key].append(state.windows(key, x[a:a + n]))
        a += n
    windows = [levels[i][:, None] if i not in stacks else stacks[i][0] if len(stacks[i]) == 1
               else torch.cat(stacks[i]) for i in range(len(levels))]  # per level (N, S, C, H, W)
    blocks = [key[0] for key in stacks if isinstance(key, tuple) and key[1] == KEYS]
    kv = {b: [Known((k,), (v,)) for k, v in zip(stacks[b, KEYS], stacks[b, VALUES], strict=True)]
          for b in blocks}  # per attention block, per item (T, n_i*P, h, d) each
    scored = score_stacked(model, clip, (lap, res), windows, kv, heatmap)
    out, a = [], 0
    for (state, _), n in zip(items, sizes, strict=True):
        state.count += n
        out.append(Scored(*(v[:, a:a + n] if v is not None else None for v in vars(scored).values())))
        a += n
    return out
