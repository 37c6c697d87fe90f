"""Where each temporal variant puts which module, chosen by one config string."""

from __future__ import annotations

from torch import nn

from model.temporal.attention import BasicTemporalAttention, NoTemporal, PooledTemporal
from model.temporal.bottleneck_fusion import EnhancedTemporalFusion
from model.temporal.hierarchical import HierarchicalTemporalAttention
from model.temporal.multiscale import MultiScaleTemporalAttention
from model.temporal.pooling import AdaptiveTemporalPooling

MAX_GRID = 2048  # positions; larger feature maps are attended on a pooled grid


def make_temporal(kind: str, channels: int, heads: int, num_frames: int, causal: bool,
                  grid: tuple[int, int] = (1, 1)) -> nn.Module:
    """One skip-level module by name for a (h, w) feature grid; "none" is the identity."""
    module = _make(kind, channels, heads, num_frames, causal)
    h, w = grid
    factor = 1
    while h * w > MAX_GRID and h % 2 == 0 and w % 2 == 0:
        h, w, factor = h // 2, w // 2, factor * 2
    return PooledTemporal(module, factor) if factor > 1 and kind != "none" else module


def _make(kind: str, channels: int, heads: int, num_frames: int, causal: bool) -> nn.Module:
    if kind == "none":
        return NoTemporal()
    if kind == "basic":
        return BasicTemporalAttention(channels, heads, num_frames, causal)
    if kind == "multiscale":
        return MultiScaleTemporalAttention(channels, heads, num_frames, causal)
    if kind == "hierarchical":
        return HierarchicalTemporalAttention(channels, heads, num_frames, causal)
    if kind == "adaptive":
        return AdaptiveTemporalPooling(channels, num_frames, causal)
    if kind == "enhanced":
        return EnhancedTemporalFusion(channels, heads, num_frames, causal)
    raise ValueError(f"unknown temporal module {kind!r}")


def skip_plan(variant: str, depth: int) -> list[str]:
    """Module name per U-Net level 0..depth-1 (the last level is the bottleneck).

    "full" follows the seed's attention flow: multi-scale at the outermost skip, hierarchical in
    between, enhanced fusion at the bottleneck. "coarse" is "full" without the outermost skip's attention
    (that level's features pass unchanged): the finest level has the most positions, and its attention is
    most of a frame's cost when frames are scored one by one. The other variants use one module everywhere.
    """
    if variant not in ("full", "coarse"):
        return [variant] * depth
    if depth == 1:
        return ["enhanced"]
    plan = ["multiscale"] + ["hierarchical"] * (depth - 2) + ["enhanced"]
    return ["none", *plan[1:]] if variant == "coarse" else plan


def uses_input_fusion(variant: str) -> bool:
    return variant in ("full", "coarse")


def discriminator_kind(variant: str) -> str:
    """Temporal module over the discriminator's per-frame feature sequence."""
    return "basic" if variant in ("full", "coarse") else variant
