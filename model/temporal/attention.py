"""Multi-head self-attention across the frames of a window, one sequence per spatial position."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

MIN_HEAD_DIM = 16  # narrower heads cost more than they give on CPUs (many tiny matrix products)


def fit_heads(channels: int, heads: int) -> int:
    """Largest head count <= heads that divides channels with heads of at least MIN_HEAD_DIM channels."""
    for h in range(max(1, min(heads, channels // MIN_HEAD_DIM)), 0, -1):
        if channels % h == 0:
            return h
    return 1


def temporal_mask(
    t: int, causal: bool, window: int | None = None, dilation: int = 1, device: torch.device | None = None
) -> torch.Tensor:
    """(T, T) bool, True where query frame i may attend key frame j.

    causal: only j <= i; window: only |i - j| < window; dilation: only (i - j) % dilation == 0.
    The diagonal is always allowed, so every row has a key.
    """
    i = torch.arange(t, device=device)[:, None]
    j = torch.arange(t, device=device)[None, :]
    d = i - j
    allowed = (d % dilation) == 0
    if causal:
        allowed &= d >= 0
    if window is not None:
        allowed &= d.abs() < window
    return allowed


def additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool attention mask (True where a key may be seen) as the float one added to the logits: 0 there, -inf
    elsewhere. The same attention; in ONNX Runtime, a mask of constants folds into one and the logits take an
    addition, where a bool mask selects them with a Where, which is many times slower (docs/benchmarks.md)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))


class TemporalSelfAttention(nn.Module):
    """Pre-norm multi-head attention over (N, T, C) token sequences, with a learned frame position code.

    Returns the attended update (not added to the input: callers own the residual). The last
    attention probabilities are kept in `last_attention` while training, for the regulariser.
    """

    def __init__(self, channels: int, heads: int, num_frames: int) -> None:
        super().__init__()
        self.heads = fit_heads(channels, heads)
        self.norm = nn.LayerNorm(channels)
        self.pos = nn.Parameter(torch.zeros(num_frames, channels))
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.last_attention: torch.Tensor | None = None

    def frame_kv(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F, C) tokens -> (N, F, 2C): each frame's keys and values before its position code is added (they
        depend on that frame alone, so a stream computes them once per frame)."""
        c = x.shape[-1]
        return F.linear(self.norm(x), self.qkv.weight[c:])

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last: int | None = None,
                kv: list[Known] | None = None) -> torch.Tensor:
        """(N, T, C) -> the update of every frame, or of the `last` frames only (N, last, C): the same values, as
        each frame's query is its own. `kv`: the frames' keys and values, when already known, as parts (Known)
        that stack to N tokens (one per sequence scored in the pass); x may then hold only its last frames (at least
        `last`): the window is the mask's T frames."""
        n, f, c = x.shape  # (N, T, C), or (N, F, C), the last F of T frames, with kv
        t = mask.shape[0]
        h = self.heads
        if f < t and (kv is None or self.training):
            raise ValueError(f"{f} of {t} frames' tokens need the frames' keys and values (kv)")
        if not self.training and (last is not None or kv is not None):
            first = t - (last or t)  # the first frame whose update is asked for
            held = t - window_length(x, kv) if kv is not None else 0  # kv's frames: the window's from this one on
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(self.norm(x[:, f - (t - first):]) + self.pos[first:t], w[:c], b[:c])
            rows = mask[first:]
            if torch.compiler.is_exporting():  # a graph cannot depend on the mask's values: it reads every frame
                keys = torch.arange(held, t, device=x.device)  # held, and the mask keeps out those a query may not see
            else:
                keys = rows.any(0).nonzero().squeeze(1)  # the frames these queries may see: only theirs are read
                if len(keys) and int(keys[0]) < held:
                    raise ValueError(f"the queries see frame {int(keys[0])} of {t}; the keys and values given start "
                                     f"at frame {held}")
            pos_kv = F.linear(self.pos[keys], w[c:], b[c:])
            if len(keys) < t:
                rows = rows[:, keys]
            if kv is not None and t - first == 1:
                out = attend_latest(q.reshape(n, h, c // h), select_frames(kv, keys - held), pos_kv, rows[0])
                return self.proj(out.reshape(n, 1, c))
            q = q.reshape(n, t - first, h, c // h).transpose(1, 2)
            if kv is not None:  # (T', N, h, d) each
                k, v = ((joined(part) + p.unflatten(-1, (h, c // h))[:, None]).permute(1, 2, 0, 3)
                        for part, p in zip(select_frames(kv, keys - held), pos_kv.chunk(2, -1), strict=True))
            else:  # (N, T', 2C)
                kv = self.frame_kv(x if len(keys) == t else x.index_select(1, keys)) + pos_kv
                k, v = kv.unflatten(-1, (2, h, c // h)).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=additive(rows, q.dtype))
            return self.proj(out.transpose(1, 2).reshape(n, t - first, c))
        y = self.norm(x) + self.pos[:t]
        q, k, v = self.qkv(y).reshape(n, t, 3, h, c // h).permute(2, 0, 3, 1, 4)  # 3 x (N, h, T, d)
        if self.training:
            logits = (q @ k.transpose(-2, -1)) / math.sqrt(c // h)  # (N, h, T, T)
            probs = logits.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            self.last_attention = probs
            out = probs @ v
        else:
            self.last_attention = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=additive(mask, q.dtype))
        out = self.proj(out.transpose(1, 2).reshape(n, t, c))
        return out if last is None else out[:, t - last:]


class Known(NamedTuple):
    """An attention block's keys and values already known, frame_kv's two halves without the position code, by
    head, frames first: each a tuple of consecutive chunks of frames (T_j, N, h, d), oldest first. One chunk where
    they lie in a ring; a stream's past and its new frame as two, which a graph then reads as they are: joining
    them, splitting keys from values or heads from channels would copy every cached frame, per block and frame
    (docs/benchmarks.md)."""

    k: tuple[torch.Tensor, ...]
    v: tuple[torch.Tensor, ...]

    @classmethod
    def of(cls, kv: torch.Tensor, heads: int) -> Known:
        """frame_kv's (T, N, 2C), frames first, of a block of `heads` heads -> its keys and values, one chunk
        each."""
        k, v = kv.unflatten(-1, (2, heads, -1)).unbind(-3)
        return cls((k,), (v,))


def joined(chunks: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Consecutive chunks of frames as one tensor (the chunk itself, not a copy, where there is one)."""
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


def select_frames(parts: list[Known], keys: torch.Tensor) -> Known:
    """Known keys and values in parts that stack to N tokens (one per sequence of the pass) -> those of the frames
    `keys` of all parts, one chunk each (len(keys), N, h, d): views where there is one part of one chunk and the frames
    are evenly spaced. A graph reads every frame (keys is all of them) and keeps one part's chunks as they are."""
    if torch.compiler.is_exporting():
        if len(parts) == 1:
            return parts[0]
        return Known(*((torch.cat([joined(getattr(p, f)) for p in parts], 1),) for f in Known._fields))
    idx = keys.tolist()
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    even = step > 0 and idx == list(range(idx[0], idx[-1] + 1, step))

    def read(chunks: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = joined(chunks)
        return x[idx[0]:idx[-1] + 1:step] if even else x.index_select(0, keys)

    return Known(*((read(getattr(parts[0], f)) if len(parts) == 1
                    else torch.cat([read(getattr(p, f)) for p in parts], 1),) for f in Known._fields))


def attend_latest(q: torch.Tensor, known: Known, pos_kv: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Attention of one query frame per sequence, (N, h, d), over keys and values read where they lie (`known`:
    T' frames, in chunks, without their position code), `pos_kv` (T', 2C), where `allowed` (T',) -> (N, h, d): the
    values of scaled_dot_product_attention over the keys and values with the code added, without first copying
    them into that layout with it: q.(k + p) = q.k + q.p, and the codes' terms are small products. The logits are
    a product summed over the channels, the weighted values a matrix product (the faster of the forms tried in ONNX
    Runtime and torch, docs/benchmarks.md), chunk by chunk."""
    h, d = q.shape[1:]
    pk, pv = pos_kv.unflatten(-1, (2, h, d)).unbind(1)  # (T', h, d) each
    q = q * d ** -0.5
    logits = joined(tuple((k * q).sum(-1) for k in known.k))  # (T', N, h)
    logits = logits.permute(1, 2, 0) + (q.transpose(0, 1) @ pk.permute(1, 2, 0)).transpose(0, 1)  # (N, h, T')
    weights = (logits + additive(allowed, logits.dtype)).softmax(-1)
    out = (weights.transpose(0, 1) @ pv.transpose(0, 1)).transpose(0, 1)
    a = 0
    for v in known.v:
        w = weights[..., a:a + len(v)]
        out = out + (w * v[0] if len(v) == 1 else (w.unsqueeze(2) @ v.permute(1, 2, 0, 3)).squeeze(2))
        a += len(v)
    return out


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B*H*W, T, C): one temporal sequence per spatial position."""
    b, t, c, h, w = x.shape
    return x.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)


def from_tokens(tokens: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of to_tokens."""
    b, t, c, h, w = shape
    return tokens.reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2)


KeysValues = dict[nn.Module, list[Known]] | None  # each attention block's keys and values of its tokens, when
# known: per sequence of the pass, frames first


def keys(kv: KeysValues, attn: nn.Module) -> list[Known] | None:
    return kv.get(attn) if kv else None


def window_length(x: torch.Tensor, parts: list[Known] | None) -> int:
    """The window's frame count T: x's (B, T, ...), or, where an attention block's keys and values are known
    (`parts`), theirs: x may then hold only the last frames (TemporalModule.frames_read)."""
    return sum(len(k) for k in parts[0].k) if parts else x.shape[1]


def tail(x: torch.Tensor, last: int | None) -> torch.Tensor:
    """The `last` frames of (B, T, ...) (all when None)."""
    return x if last is None else x[:, x.shape[1] - last:]


class TemporalModule(nn.Module):
    """Base of the skip-level temporal modules: (B, T, C, H, W) -> same shape, residual; with `last`, the output of
    the last `last` frames only (B, last, C, H, W), the same values for less work."""

    def attention_maps(self) -> list[torch.Tensor]:
        return [m.last_attention for m in self.modules()
                if isinstance(m, TemporalSelfAttention) and m.last_attention is not None]

    def attentions(self) -> list[TemporalSelfAttention]:
        """The attention blocks inside, each over the tokens of token_grid(x)."""
        return [m for m in self.modules() if isinstance(m, TemporalSelfAttention)]

    def token_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> the feature grid whose tokens the attention blocks see."""
        return x

    def frames_read(self, last: int, t: int) -> int:
        """How many of a T-frame window's last frames forward(x, last, kv) reads when every attention block's keys
        and values are given: a stream keeps only those of its per-frame features (model.streaming), and x may
        hold only them. All of them unless a module says otherwise."""
        return t

    def key_spans(self, t: int) -> dict[TemporalSelfAttention, int]:
        """Per attention block, how many of a T-frame window's last frames the newest frame's query may see: a
        stream keeps only their keys and values (model.streaming), and the block is given only them. All of them
        unless a module says otherwise."""
        return {block: t for block in self.attentions()}


class NoTemporal(TemporalModule):
    """No temporal mixing: each frame's features pass unchanged."""

    def frames_read(self, last: int, t: int) -> int:
        return last

    def forward(self, x: torch.Tensor, last: int | None = None, kv: KeysValues = None) -> torch.Tensor:
        return tail(x, last)


class PooledTemporal(TemporalModule):
    """Runs a temporal module on a `factor`-times coarser grid and adds its upsampled update:
    the same temporal context at a fraction of the cost on large feature maps."""

    def __init__(self, inner: nn.Module, factor: int) -> None:
        super().__init__()
        self.inner = inner
        self.factor = factor

    def token_grid(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        return F.avg_pool2d(x.flatten(0, 1), self.factor).unflatten(0, (b, t))

    def frames_read(self, last: int, t: int) -> int:
        return self.inner.frames_read(last, t)  # pooling is per frame

    def key_spans(self, t: int) -> dict[TemporalSelfAttention, int]:
        return self.inner.key_spans(t)

    def forward(self, x: torch.Tensor, last: int | None = None, kv: KeysValues = None) -> torch.Tensor:
        coarse = self.token_grid(x)
        update = (self.inner(coarse, last, kv) - tail(coarse, last)).flatten(0, 1)
        x = tail(x, last)
        return x + F.interpolate(update, scale_factor=self.factor, mode="nearest").unflatten(0, x.shape[:2])


class BasicTemporalAttention(TemporalModule):
    """x + MHSA_T(x) at every spatial position (causal when predicting)."""

    def __init__(self, channels: int, heads: int, num_frames: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.attn = TemporalSelfAttention(channels, heads, num_frames)

    def frames_read(self, last: int, t: int) -> int:
        return last  # each frame's query is its own; the others' keys and values are given

    def forward(self, x: torch.Tensor, last: int | None = None, kv: KeysValues = None) -> torch.Tensor:
        tok = to_tokens(x)
        mask = temporal_mask(window_length(tok, keys(kv, self.attn)), self.causal, device=x.device)
        x = tail(x, last)
        return x + from_tokens(self.attn(tok, mask, last, keys(kv, self.attn)), x.shape)
