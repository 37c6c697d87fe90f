"""Small configs and clips for model tests."""

import torch

from model import OCRGANConfig


def tiny_cfg(**kw) -> OCRGANConfig:
    base = dict(isize=32, nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4, temporal="full")
    base.update(kw)
    return OCRGANConfig(**base)


def rand_clip(cfg: OCRGANConfig, b: int = 2) -> torch.Tensor:
    return torch.rand(b, cfg.num_frames, cfg.in_channels, *cfg.hw) * 2 - 1
