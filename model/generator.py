"""Multi-stream U-Net generator over clips: per-frame convolutions per stream, channel selection between the
streams, temporal modules on the skips."""

from __future__ import annotations

import torch
from torch import nn

from model.channel_selection import ChannelSelection, total
from model.config import OCRGANConfig
from model.motion import flow_length
from model.temporal import KeysValues, TemporalFeatureFusion, make_temporal, skip_plan, uses_input_fusion

FLOW_GAIN = 4.0  # flow (pixels per frame) enters the network multiplied by this: ~[-1, 1] for normal motion


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


def bounded(flow: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """(..., 2, H, W) -> the same directions with magnitudes squashed below `bound`: b * tanh(|f| / b)."""
    mag = flow_length(flow, -3, keepdim=True)
    return flow * (bound * torch.tanh(mag / bound) / mag.clamp_min(1e-6))


class MultiStreamUNet(nn.Module):
    """Streams (B, T, C_s, H, W): the Laplacian and residual bands of the appearance and, with the motion
    band, the flow -> the predicted streams for the requested frame positions.

    One per-frame encoder per stream; at every level a channel-selection block reweights the streams and
    their weighted sum is the skip feature, which a temporal module mixes across frames. One decoder
    upsamples the skips (without those of the `skip_cut` finest levels: what it predicts passes through the
    coarser ones) and emits every stream. Appearance bands are the previous frame's plus a predicted change
    with cfg.residual; the flow's magnitude is bounded by the buffer `flow_bound` (set from the normal
    speeds of the training footage), so a motion faster than normal can never be predicted away.
    """

    def __init__(self, cfg: OCRGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        depth = cfg.unet_depth
        causal = cfg.causal
        self.channels = [cfg.nc, cfg.nc] + ([2] if cfg.motion else [])
        self.widths = [cfg.ngf * min(2**level, 8) for level in range(depth)]
        self.fuse = nn.ModuleList(nn.Identity() for _ in self.channels)
        cins = list(self.channels)
        if uses_input_fusion(cfg.temporal):
            self.fuse = nn.ModuleList(TemporalFeatureFusion(c, cfg.num_frames, causal) for c in self.channels)
            cins = [c + f.out_channels_added for c, f in zip(self.channels, self.fuse, strict=True)]
        self.enc = nn.ModuleList(
            nn.ModuleList(down_block(i, o, norm=k > 0) for k, (i, o) in enumerate(zip([cin, *self.widths[:-1]],
                                                                                       self.widths, strict=True)))
            for cin in cins
        )
        streams = len(self.channels)
        self.select = nn.ModuleList(ChannelSelection(w, cfg.cs_reduction, streams=streams) for w in self.widths)
        plan = skip_plan(cfg.temporal, depth)
        h, w = cfg.hw
        grids = [(h >> (level + 1), w >> (level + 1)) for level in range(depth)]
        self.temporal = nn.ModuleList(
            make_temporal(kind, c, cfg.heads, cfg.num_frames, causal, grid)
            for kind, c, grid in zip(plan, self.widths, grids, strict=True)
        )
        # Decoder: level l (l >= 1) upsamples into level l-1, whose skip is then concatenated (unless cut).
        self.use_skip = [level >= cfg.skip_cut for level in range(depth)]
        # levels whose skip no one reads (cut, and not the memory's: OCRGANVideo says which that is): their temporal
        # modules never run, in training either (nothing but the attention regulariser would read them there, and a
        # training step of the recipe took 1.35 times as long with level 0's)
        self.idle_levels: frozenset[int] = frozenset()
        ups = []
        for level in range(depth - 1, 0, -1):
            with_skip = level != depth - 1 and self.use_skip[level]
            ups.append(up_block(self.widths[level] * (2 if with_skip else 1), self.widths[level - 1]))
        self.up = nn.ModuleList(ups)
        last_in = self.widths[0] * (2 if depth > 1 and self.use_skip[0] else 1)
        self.head = nn.ConvTranspose2d(last_in, sum(self.channels), 4, stride=2, padding=1)
        self.residual = cfg.residual and cfg.objective == "predict"
        self.register_buffer("flow_bound", torch.tensor(0.25))  # pixels per frame; set from the training footage
        if self.residual:  # start as "no change": the prediction begins as the previous frame
            with torch.no_grad():
                self.head.weight.mul_(0.01)
                self.head.bias.zero_()

    def encode(self, streams: list[torch.Tensor], context: int = 0, last: int | None = None) -> list[torch.Tensor]:
        """Skip features per level, each (B, T, C_l, H_l, W_l), after the temporal modules (of the `last` frames
        only, when given). The first `context` frames of the streams are only context for the input fusion: they
        are dropped before the encoder."""
        return self.mix(self.encode_frames(streams, context), last)

    def encode_frames(self, streams: list[torch.Tensor], context: int = 0) -> list[torch.Tensor]:
        """Per-frame features per level, (B, T, C_l, H_l, W_l), before the temporal modules: each frame's depend on
        that frame alone (and, with input fusion, on the frames before it, which `context` leading frames supply)."""
        b, t = streams[0].shape[:2]
        t -= context
        xs = [fuse(s)[:, context:].flatten(0, 1) for fuse, s in zip(self.fuse, self._scaled(streams), strict=True)]
        levels = []
        for level, select in enumerate(self.select):
            xs = list(select(*(enc[level](x) for enc, x in zip(self.enc, xs, strict=True))))
            levels.append(total(xs).unflatten(0, (b, t)))
        return levels

    def mix(self, levels: list[torch.Tensor], last: int | None = None, kv: KeysValues = None) -> list[torch.Tensor]:
        """The temporal module of each level over its per-frame features -> the skip features (of the `last`
        frames only, when given: the same values for less work). `kv`: attention keys and values already known.
        An idle level (idle_levels) keeps its per-frame features: nothing reads its skip."""
        out = []
        for level, (temporal, x) in enumerate(zip(self.temporal, levels, strict=True)):
            if level in self.idle_levels:
                out.append(x[:, -last:] if last else x)
            else:
                out.append(temporal(x, last, kv))
        return out

    @property
    def fusion_context(self) -> int:
        """Frames before a frame that its input fusion reads (0 without input fusion)."""
        return max((f.k - 1 for f in self.fuse if isinstance(f, TemporalFeatureFusion)), default=0)

    def _scaled(self, streams: list[torch.Tensor]) -> list[torch.Tensor]:
        return [*streams[:2], *(s * FLOW_GAIN for s in streams[2:])]

    def decode(self, skips: list[torch.Tensor], positions: slice | None = None) -> list[torch.Tensor]:
        """Decode only the frames at `positions` (all when None) -> one (B, T', C_s, H, W) per stream: the
        appearance bands (their change, with cfg.residual) and the bounded flow."""
        pos = positions if positions is not None else slice(None)
        sel = [s[:, pos] for s in skips]
        b, t = sel[0].shape[:2]
        flat = [s.flatten(0, 1) for s in sel]
        u = flat[-1]
        for k, up in enumerate(self.up):
            level = len(flat) - 2 - k
            u = up(u)
            if self.use_skip[level]:
                u = torch.cat([u, flat[level]], dim=1)
        out = self.head(u).unflatten(0, (b, t))  # (B, T', sum C_s, H, W)
        parts = list(out.split(self.channels, dim=2))
        if not self.residual:
            parts[1] = torch.tanh(parts[1])
        if self.cfg.motion:
            parts[2] = bounded(parts[2], self.flow_bound)
        return parts

    def forward(self, streams: list[torch.Tensor], positions: slice | None = None) -> list[torch.Tensor]:
        return self.decode(self.encode(streams), positions)
