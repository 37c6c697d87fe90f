"""Hierarchical temporal attention: frame, 4-frame sequence and whole-snippet levels."""

from __future__ import annotations

import torch
from torch import nn

from model.temporal.attention import (
    KeysValues,
    TemporalModule,
    TemporalSelfAttention,
    from_tokens,
    keys,
    tail,
    temporal_mask,
    to_tokens,
    window_length,
)


class HierarchicalTemporalAttention(TemporalModule):
    """Frame level (a per-frame MLP), sequence level (attention within `sequence` neighbouring
    frames) and snippet level (attention over the whole window), mixed by learned softmax weights."""

    def __init__(self, channels: int, heads: int, num_frames: int, causal: bool, sequence: int = 4) -> None:
        super().__init__()
        self.causal = causal
        self.sequence = sequence
        self.frame = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, channels), nn.GELU(),
                                   nn.Linear(channels, channels))
        self.seq_attn = TemporalSelfAttention(channels, heads, num_frames)
        self.snip_attn = TemporalSelfAttention(channels, heads, num_frames)
        self.mix = nn.Parameter(torch.zeros(3))

    def frames_read(self, last: int, t: int) -> int:
        return last

    def key_spans(self, t: int) -> dict[TemporalSelfAttention, int]:
        return {self.seq_attn: min(self.sequence, t) if self.causal else t, self.snip_attn: t}

    def forward(self, x: torch.Tensor, last: int | None = None, kv: KeysValues = None) -> torch.Tensor:
        tok = to_tokens(x)
        t = window_length(tok, keys(kv, self.snip_attn))
        frame = self.frame(tail(tok, last))
        seq = self.seq_attn(tok, temporal_mask(t, self.causal, window=self.sequence, device=x.device), last,
                            keys(kv, self.seq_attn))
        snip = self.snip_attn(tok, temporal_mask(t, self.causal, device=x.device), last, keys(kv, self.snip_attn))
        w = self.mix.softmax(0)
        x = tail(x, last)
        return x + from_tokens(w[0] * frame + w[1] * seq + w[2] * snip, x.shape)
