"""Channel selection between the Laplacian and residual streams (a registered, trained submodule)."""

from __future__ import annotations

import torch
from torch import nn


class ChannelSelection(nn.Module):
    """Per-channel softmax weights over the two streams from the pooled sum of both.

    GAP(a + b) -> FC(C -> d) -> ReLU -> one FC(d -> C) head per stream -> softmax across streams.
    Returns the reweighted streams (w_a * a, w_b * b); w_a + w_b = 1 per channel.
    """

    def __init__(self, channels: int, reduction: int = 2, min_dim: int = 32) -> None:
        super().__init__()
        d = max(channels // reduction, min_dim)
        self.squeeze = nn.Sequential(nn.Linear(channels, d), nn.ReLU(inplace=True))
        self.head_a = nn.Linear(d, channels)
        self.head_b = nn.Linear(d, channels)
        self.last_weights: torch.Tensor | None = None  # (N, 2, C), kept for inspection

    def weights(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) x 2 -> (N, 2, C) softmax weights."""
        g = (a + b).mean(dim=(2, 3))  # (N, C)
        z = self.squeeze(g)
        logits = torch.stack([self.head_a(z), self.head_b(z)], dim=1)  # (N, 2, C)
        return logits.softmax(dim=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights(a, b)
        self.last_weights = w.detach()
        return a * w[:, 0, :, None, None], b * w[:, 1, :, None, None]
