"""Channel selection between the streams (frequency bands, and the motion band): a registered, trained
submodule."""

from __future__ import annotations

import torch
from torch import nn


def total(xs: list[torch.Tensor]) -> torch.Tensor:
    """The sum of same-shaped tensors, added one to the next: stacking them to sum over the new axis copies them
    all first, and ONNX Runtime reduces over a leading axis at a fraction of the speed of an addition."""
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


class ChannelSelection(nn.Module):
    """Per-channel softmax weights over S streams from the pooled sum of all of them.

    GAP(sum of streams) -> FC(C -> d) -> ReLU -> one FC(d -> C) head per stream -> softmax across streams.
    Returns the reweighted streams (w_1 * x_1, ..., w_S * x_S); the weights sum to 1 per channel.
    """

    def __init__(self, channels: int, reduction: int = 2, min_dim: int = 32, streams: int = 2) -> None:
        super().__init__()
        d = max(channels // reduction, min_dim)
        self.squeeze = nn.Sequential(nn.Linear(channels, d), nn.ReLU(inplace=True))
        self.heads = nn.ModuleList(nn.Linear(d, channels) for _ in range(streams))
        self.last_weights: torch.Tensor | None = None  # (N, S, C), kept for inspection

    def weights(self, *xs: torch.Tensor) -> torch.Tensor:
        """S x (N, C, H, W) -> (N, S, C) softmax weights."""
        g = total([x.mean(dim=(2, 3)) for x in xs])  # (N, C): the mean of their sum, without stacking the maps
        z = self.squeeze(g)
        logits = torch.stack([head(z) for head in self.heads], dim=1)  # (N, S, C)
        return logits.softmax(dim=1)

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        w = self.weights(*xs)
        self.last_weights = w.detach()
        return tuple(x * w[:, k, :, None, None] for k, x in enumerate(xs))
