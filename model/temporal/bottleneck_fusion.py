"""Enhanced temporal fusion at the bottleneck: attention, a temporal convolution and an MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
)


class EnhancedTemporalFusion(TemporalModule):
    """A small transformer block across frames at every bottleneck position: self-attention, a
    depthwise temporal convolution (3 frames, causal when predicting) and an MLP, each residual."""

    def __init__(self, channels: int, heads: int, num_frames: int, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.attn = TemporalSelfAttention(channels, heads, num_frames)
        self.conv_norm = nn.LayerNorm(channels)
        self.tconv = nn.Conv1d(channels, channels, kernel_size=3, groups=channels)
        self.mlp = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, 2 * channels), nn.GELU(),
                                 nn.Linear(2 * channels, channels))

    def forward(self, x: torch.Tensor, last: int | None = None, kv: KeysValues = None) -> torch.Tensor:
        tok = to_tokens(x)  # (N, T, C)
        t = tok.shape[1]
        mask = temporal_mask(t, self.causal, device=x.device)
        if last is not None and self.causal and last + 2 <= t:  # the last frames need the attention of 2 more
            tok = tail(tok, last + 2) + self.attn(tok, mask, last + 2, keys(kv, self.attn))
            tok = tok[:, 2:] + self.tconv(self.conv_norm(tok).transpose(1, 2)).transpose(1, 2)
        else:
            tok = tok + self.attn(tok, mask, kv=keys(kv, self.attn))
            y = self.conv_norm(tok).transpose(1, 2)  # (N, C, T)
            y = F.pad(y, (2, 0) if self.causal else (1, 1), mode="replicate")
            tok = tail(tok + self.tconv(y).transpose(1, 2), last)
        tok = tok + self.mlp(tok)
        return from_tokens(tok, tail(x, last).shape)
