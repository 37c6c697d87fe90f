"""Per-frame DCGAN discriminator: a feature per frame, temporal attention over the sequence, a logit."""

from __future__ import annotations

import torch
from torch import nn

from model.config import OCRGANConfig
from model.temporal import discriminator_kind, make_temporal


class FrameDiscriminator(nn.Module):
    """frames (B, T, C, H, W) -> (logits (B, T), per-frame features (B, T, nz), attended features).

    The per-frame features (before temporal attention) feed the anomaly score, so a frame's
    feature never depends on other frames; the attended ones feed the classifier and the
    feature-matching loss.
    """

    def __init__(self, cfg: OCRGANConfig) -> None:
        super().__init__()
        h, w = cfg.hw
        c = cfg.ndf
        layers: list[nn.Module] = [nn.Conv2d(cfg.nc, c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        h, w = h // 2, w // 2
        while min(h, w) > 4:
            c_out = min(c * 2, cfg.ndf * 8)
            layers += [nn.Conv2d(c, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]
            c, h, w = c_out, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.to_feature = nn.Conv2d(c, cfg.nz, kernel_size=(h, w), bias=False)
        causal = cfg.causal
        self.temporal = make_temporal(discriminator_kind(cfg.temporal), cfg.nz, cfg.heads, cfg.num_frames, causal)
        self.classifier = nn.Linear(cfg.nz, 1)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T, nz)."""
        b, t = frames.shape[:2]
        f = self.to_feature(self.features(frames.flatten(0, 1)))  # (B*T, nz, 1, 1)
        return f.flatten(1).unflatten(0, (b, t))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat = self.frame_features(frames)
        attended = self.temporal(feat[..., None, None])[..., 0, 0]  # (B, T, nz)
        return self.classifier(attended).squeeze(-1), feat, attended
