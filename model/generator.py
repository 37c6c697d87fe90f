"""Dual-stream U-Net generator over clips: per-frame convolutions, temporal modules on the skips."""

from __future__ import annotations

import torch
from torch import nn

from model.channel_selection import ChannelSelection
from model.config import OCRGANConfig
from model.temporal import TemporalFeatureFusion, make_temporal, skip_plan, uses_input_fusion


def down_block(cin: int, cout: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DualStreamUNet(nn.Module):
    """(lap, res) clips (B, T, C, H, W) -> (fake_lap, fake_res) for the requested frame positions
    (with cfg.residual, the predicted change of each band instead).

    Two per-frame encoders (Laplacian and residual); at every level a channel-selection block
    reweights both streams and their weighted sum is the skip feature, which a temporal module
    mixes across frames. One decoder upsamples the skips and emits both bands.
    """

    def __init__(self, cfg: OCRGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        depth = cfg.unet_depth
        causal = cfg.objective == "predict"
        self.widths = [cfg.ngf * min(2**level, 8) for level in range(depth)]
        cin = cfg.nc
        self.fuse_lap: nn.Module = nn.Identity()
        self.fuse_res: nn.Module = nn.Identity()
        if uses_input_fusion(cfg.temporal):
            self.fuse_lap = TemporalFeatureFusion(cfg.nc, cfg.num_frames, causal)
            self.fuse_res = TemporalFeatureFusion(cfg.nc, cfg.num_frames, causal)
            cin = cfg.nc + self.fuse_lap.out_channels_added
        ins = [cin, *self.widths[:-1]]
        pairs = list(zip(ins, self.widths, strict=True))
        self.enc_lap = nn.ModuleList(down_block(i, o, norm=k > 0) for k, (i, o) in enumerate(pairs))
        self.enc_res = nn.ModuleList(down_block(i, o, norm=k > 0) for k, (i, o) in enumerate(pairs))
        self.select = nn.ModuleList(ChannelSelection(w, cfg.cs_reduction) for w in self.widths)
        plan = skip_plan(cfg.temporal, depth)
        h, w = cfg.hw
        grids = [(h >> (level + 1), w >> (level + 1)) for level in range(depth)]
        self.temporal = nn.ModuleList(
            make_temporal(kind, c, cfg.heads, cfg.num_frames, causal, grid)
            for kind, c, grid in zip(plan, self.widths, grids, strict=True)
        )
        # Decoder: level l (l >= 1) upsamples into level l-1, whose skip is then concatenated.
        ups = []
        for level in range(depth - 1, 0, -1):
            cin_up = self.widths[level] * (1 if level == depth - 1 else 2)
            ups.append(up_block(cin_up, self.widths[level - 1]))
        self.up = nn.ModuleList(ups)
        last_in = self.widths[0] * (2 if depth > 1 else 1)
        self.head = nn.ConvTranspose2d(last_in, 2 * cfg.nc, 4, stride=2, padding=1)
        self.residual = cfg.residual and cfg.objective == "predict"
        if self.residual:  # start as "no change": the prediction begins as the previous frame
            with torch.no_grad():
                self.head.weight.mul_(0.01)
                self.head.bias.zero_()

    def encode(self, lap: torch.Tensor, res: torch.Tensor) -> list[torch.Tensor]:
        """Skip features per level, each (B, T, C_l, H_l, W_l), after the temporal modules."""
        b, t = lap.shape[:2]
        a = self.fuse_lap(lap).flatten(0, 1)  # (B*T, C, H, W)
        r = self.fuse_res(res).flatten(0, 1)
        skips = []
        for enc_a, enc_r, select, temporal in zip(self.enc_lap, self.enc_res, self.select, self.temporal, strict=True):
            a, r = select(enc_a(a), enc_r(r))
            s = (a + r).unflatten(0, (b, t))
            skips.append(temporal(s))
        return skips

    def decode(self, skips: list[torch.Tensor], positions: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode only the frames at `positions` (all when None) -> 2 x (B, T', C, H, W)."""
        pos = positions if positions is not None else slice(None)
        sel = [s[:, pos] for s in skips]
        b, t = sel[0].shape[:2]
        flat = [s.flatten(0, 1) for s in sel]
        u = flat[-1]
        for k, up in enumerate(self.up):
            u = torch.cat([up(u), flat[-2 - k]], dim=1)
        out = self.head(u).unflatten(0, (b, t))  # (B, T', 2C, H, W)
        nc = self.cfg.nc
        if self.residual:
            return out[:, :, :nc], out[:, :, nc:]  # changes of each band, added by the caller
        return out[:, :, :nc], torch.tanh(out[:, :, nc:])

    def forward(self, lap: torch.Tensor, res: torch.Tensor,
                positions: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.encode(lap, res), positions)
