"""Adaptive temporal pooling: a content-weighted summary of the (past) frames added to each frame."""

from __future__ import annotations

import torch
from torch import nn

from model.temporal.attention import KeysValues, TemporalModule, from_tokens, tail, temporal_mask, to_tokens


class AdaptiveTemporalPooling(TemporalModule):
    """Each frame scores its own relevance; frame t receives the softmax-weighted mean of the frames
    it may see (those <= t when causal), projected and gated, as a residual."""

    def __init__(self, channels: int, num_frames: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.norm = nn.LayerNorm(channels)
        self.relevance = nn.Linear(channels, 1)
        self.proj = nn.Linear(channels, channels)
        self.gate = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor, last: int | None = None, kv: KeysValues = None) -> torch.Tensor:
        tok = self.norm(to_tokens(x))  # (N, T, C)
        t = tok.shape[1]
        q = last or t  # the frames whose output is asked for: the last q
        r = self.relevance(tok).squeeze(-1)  # (N, T)
        mask = temporal_mask(t, self.causal, device=x.device)[t - q:]  # (q, T)
        w = r[:, None, :].expand(-1, q, -1).masked_fill(~mask, float("-inf")).softmax(-1)  # (N, q, T)
        pooled = w @ tok  # (N, q, C)
        x = tail(x, last)
        return x + from_tokens(self.proj(pooled) * self.gate.tanh(), x.shape)
