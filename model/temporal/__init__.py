"""Temporal modules placed at the U-Net's skip levels and over the discriminator's features."""

from model.temporal.attention import (
    BasicTemporalAttention,
    KeysValues,
    Known,
    TemporalModule,
    TemporalSelfAttention,
    temporal_mask,
    to_tokens,
)
from model.temporal.bottleneck_fusion import EnhancedTemporalFusion
from model.temporal.factory import discriminator_kind, make_temporal, skip_plan, uses_input_fusion
from model.temporal.hierarchical import HierarchicalTemporalAttention
from model.temporal.input_fusion import TemporalFeatureFusion
from model.temporal.multiscale import MultiScaleTemporalAttention
from model.temporal.pooling import AdaptiveTemporalPooling

__all__ = [
    "AdaptiveTemporalPooling",
    "BasicTemporalAttention",
    "EnhancedTemporalFusion",
    "HierarchicalTemporalAttention",
    "KeysValues",
    "Known",
    "MultiScaleTemporalAttention",
    "TemporalFeatureFusion",
    "TemporalModule",
    "TemporalSelfAttention",
    "discriminator_kind",
    "make_temporal",
    "skip_plan",
    "temporal_mask",
    "to_tokens",
    "uses_input_fusion",
]
