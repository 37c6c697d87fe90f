"""Temporal feature fusion at the input: each frame gains channels computed from its neighbours."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TemporalFeatureFusion(nn.Module):
    """A learned temporal convolution (kernel `k` frames, pointwise in space) over the input stream;
    its `extra` output channels are concatenated to each frame, so the per-frame encoder sees motion.
    Causal when predicting: frame t sees frames t-k+1 .. t (the start is padded by replication)."""

    def __init__(self, channels: int, num_frames: int, causal: bool, extra: int | None = None, k: int = 3) -> None:
        super().__init__()
        self.causal = causal
        self.k = k
        self.extra = extra if extra is not None else 2 * channels
        self.weight = nn.Parameter(torch.randn(self.extra, k, channels) / (k * channels) ** 0.5)  # (E, k, C)
        self.bias = nn.Parameter(torch.zeros(self.extra))

    @property
    def out_channels_added(self) -> int:
        return self.extra

    def banded_weight(self, t: int) -> torch.Tensor:
        """The temporal convolution as one (T*E, T*C, 1, 1) pointwise convolution over stacked frames."""
        e, k, c = self.weight.shape
        before = k - 1 if self.causal else (k - 1) // 2
        dst = torch.arange(t, device=self.weight.device)
        full = self.weight.new_zeros(t, t, e, c)  # (frame out, frame in, E, C)
        for j in range(k):
            src = (dst + j - before).clamp(0, t - 1)  # replicated at the ends
            onehot = F.one_hot(src, t).to(self.weight.dtype)  # (T, T)
            full = full + onehot[:, :, None, None] * self.weight[:, j][None, None]
        return full.permute(0, 2, 1, 3).reshape(t * e, t * c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        extra = F.conv2d(x.reshape(b, t * c, h, w), self.banded_weight(t), self.bias.repeat(t))
        return torch.cat([x, extra.reshape(b, t, self.extra, h, w)], dim=2)
