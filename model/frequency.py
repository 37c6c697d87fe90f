"""Omni-frequency split: one Laplacian-pyramid level, in float, so lap + res reproduces the frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def binomial_kernel() -> torch.Tensor:
    """5x5 binomial Gaussian, sums to 1."""
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k2 = torch.outer(k, k)
    return k2 / k2.sum()


class OmniFrequencySplit(nn.Module):
    """x -> (lap, res) with res = up(down(x)) and lap = x - res; works on (..., C, H, W).

    down: 5x5 binomial blur (reflect-padded) sampled at every other pixel; up: zero insertion and
    the same blur with gain 4 (one transposed convolution), edges padded by replication.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", binomial_kernel()[None, None], persistent=False)  # (1, 1, 5, 5)

    def down(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
        c = x.shape[1]
        k = self.kernel.to(x.dtype).expand(c, 1, 5, 5)
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, stride=2, groups=c)

    def up(self, d: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, C, h, w) -> (N, C, H, W): zero insertion then blur x4, as one transposed convolution."""
        c = d.shape[1]
        k = (self.kernel * 4.0).to(d.dtype).expand(c, 1, 5, 5)
        up = F.conv_transpose2d(F.pad(d, (1, 1, 1, 1), mode="replicate"), k, stride=2, groups=c)
        return up[:, :, 4:4 + size[0], 4:4 + size[1]]

    def low_pass(self, x: torch.Tensor) -> torch.Tensor:
        """up(down(x)) for (N, C, H, W)."""
        return self.up(self.down(x), x.shape[-2:])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        flat = x.reshape(-1, *shape[-3:])  # (N, C, H, W)
        res = self.low_pass(flat).reshape(shape)
        return x - res, res
