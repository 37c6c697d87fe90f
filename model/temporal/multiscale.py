"""Multi-scale temporal attention: the same window seen at 1x, 2x and 4x temporal subsampling."""

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


class MultiScaleTemporalAttention(TemporalModule):
    """Attention restricted to frames 1, 2 or 4 apart (dilated masks keep every frame's output),
    the three results fused by a linear layer and added to the input."""

    def __init__(self, channels: int, heads: int, num_frames: int, causal: bool,
                 scales: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.causal = causal
        self.scales = scales
        self.branches = nn.ModuleList(TemporalSelfAttention(channels, heads, num_frames) for _ in scales)
        self.fuse = nn.Linear(channels * len(scales), channels)

    def frames_read(self, last: int, t: int) -> int:
        return last

    def forward(self, x: torch.Tensor, last: int | None = None, kv: KeysValues = None) -> torch.Tensor:
        tok = to_tokens(x)  # (N, T, C)
        t = window_length(tok, keys(kv, self.branches[0]))
        outs = [
            branch(tok, temporal_mask(t, self.causal, dilation=s, device=x.device), last, keys(kv, branch))
            for branch, s in zip(self.branches, self.scales, strict=True)
        ]
        x = tail(x, last)
        return x + from_tokens(self.fuse(torch.cat(outs, dim=-1)), x.shape)
