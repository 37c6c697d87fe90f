"""The assembled temporal OCR-GAN: band split, multi-stream generator, discriminator, scoring."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.config import OCRGANConfig
from model.discriminator import FrameDiscriminator
from model.frequency import OmniFrequencySplit
from model.generator import MultiStreamUNet
from model.scoring import error_map, feature_distance, flow_error_map, local_error_map, pooled_error
from model.temporal import TemporalModule


@dataclass
class Generated:
    fake: torch.Tensor  # (B, T', C, H, W) the predicted / reconstructed appearance
    fake_lap: torch.Tensor  # (B, T', C, H, W)
    fake_res: torch.Tensor  # (B, T', C, H, W)
    target: torch.Tensor  # (B, T', C, H, W) the real appearance they stand for
    fake_flow: torch.Tensor | None = None  # (B, T', 2, H, W) the predicted motion band, with one
    target_flow: torch.Tensor | None = None  # (B, T', 2, H, W)


@dataclass
class Scored:
    raw: torch.Tensor  # (B, T') combined per-frame score
    rec: torch.Tensor  # (B, T') patch maximum of the error map (scaled appearance + flow error)
    feat: torch.Tensor  # (B, T') discriminator-feature distance
    app: torch.Tensor  # (B, T') patch maximum of the appearance error alone
    motion: torch.Tensor  # (B, T') patch maximum of the flow error alone (zeros without the motion band)
    heatmap: torch.Tensor | None  # (B, T', H, W) the local error map, when asked for


class OCRGANVideo(nn.Module):
    """Clips (B, T, C_in, H, W) -> per-frame anomaly scores: C_in is the appearance (nc channels in
    [-1, 1]) and, with the motion band, the flow from the previous frame (2 channels, pixels per frame).

    With objective "predict", frame t is predicted from the frames before it (the generator sees the clip
    shifted by one frame, the first frame repeated, and every temporal module is causal); with
    "reconstruct" the clip is reconstructed from itself, as in OCR-GAN; with "mixed" the appearance of
    frame t is reconstructed (through the decoder's bottleneck) and its flow predicted from the past.
    The score of a frame is the largest patch mean of its error map (at each pixel the larger of the
    appearance and flow errors, each in units of its extreme on normal data), or, if larger, the distance
    between the discriminator's features of the frame and of its prediction in the same units. Scales,
    score statistics and the threshold are buffers, saved with the weights.
    """

    def __init__(self, cfg: OCRGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.split = OmniFrequencySplit()
        self.generator = MultiStreamUNet(cfg)
        self.discriminator = FrameDiscriminator(cfg)
        # each part's extreme on normal data (a high quantile of its per-frame value), the unit it is scored in
        self.register_buffer("app_scale", torch.tensor(1.0))
        self.register_buffer("motion_scale", torch.tensor(1.0))
        self.register_buffer("feat_scale", torch.tensor(1.0))
        self.register_buffer("rec_scale", torch.tensor(1.0))  # the error map's typical peak on normal data (display)
        self.register_buffer("score_mean", torch.tensor(0.0))  # of published scores on normal data
        self.register_buffer("score_std", torch.tensor(1.0))
        self.register_buffer("threshold", torch.tensor(3.0))  # on the normalised scale

    # --- generation ----------------------------------------------------------------------------
    @staticmethod
    def shifted(clip: torch.Tensor) -> torch.Tensor:
        """The clip one frame later: position t holds frame t-1 (frame 0 repeated)."""
        return torch.cat([clip[:, :1], clip[:, :-1]], dim=1)

    def generator_input(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(appearance, flow) the generator sees: shifted to predict, as they are to reconstruct."""
        nc, objective = self.cfg.nc, self.cfg.objective
        app = self.shifted(clip) if objective == "predict" else clip
        flow = self.shifted(clip) if objective in ("predict", "mixed") else clip
        return app[:, :, :nc], flow[:, :, nc:]

    def forward(self, clip: torch.Tensor, positions: slice | None = None,
                generator: nn.Module | None = None) -> Generated:
        """`generator` replaces self.generator for this call (a distributed wrapper of it, in training)."""
        nc = self.cfg.nc
        app, flow = self.generator_input(clip)
        lap, res = self.split(app)
        streams = [lap, res, *([flow] if self.cfg.motion else [])]
        fake = (generator or self.generator)(streams, positions)
        pos = positions if positions is not None else slice(None)
        fake_lap, fake_res = fake[0], fake[1]
        if self.generator.residual:  # the bands of the previous frame plus their predicted change
            fake_lap, fake_res = lap[:, pos] + fake_lap, res[:, pos] + fake_res
        target = clip[:, pos]
        flows = (fake[2], target[:, :, nc:]) if self.cfg.motion else (None, None)
        return Generated(fake_lap + fake_res, fake_lap, fake_res, target[:, :, :nc], *flows)

    def attention_maps(self) -> list[torch.Tensor]:
        """Attention probabilities recorded in the last training forward pass."""
        maps: list[torch.Tensor] = []
        for m in self.modules():
            if isinstance(m, TemporalModule):
                maps.extend(m.attention_maps())
        return maps

    # --- scoring -------------------------------------------------------------------------------
    def error_maps(self, gen: Generated) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(appearance error, flow error or None), each (B, T', H, W), unscaled."""
        app = error_map(gen.target, gen.fake)
        motion = flow_error_map(gen.target_flow, gen.fake_flow) if gen.fake_flow is not None else None
        return app, motion

    def combined_map(self, app: torch.Tensor, motion: torch.Tensor | None) -> torch.Tensor:
        """The error map the score pools: at each pixel the larger of the weighted errors, each in units of its
        extreme on normal data (so one cue at its extreme suffices, and one cue's everyday noise never adds to
        another's)."""
        out = self.cfg.w_score_app * app / self.app_scale
        if motion is not None:
            out = torch.maximum(out, self.cfg.w_score_motion * motion / self.motion_scale)
        return out

    def combine(self, rec: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """Per-frame score: the error map's largest patch mean, or the weighted feature distance if larger."""
        return torch.maximum(rec, self.cfg.w_score_feat * feat / self.feat_scale)

    @torch.no_grad()
    def score_detailed(self, clip: torch.Tensor, positions: slice | None = None, heatmap: bool = False) -> Scored:
        gen = self(clip, positions)
        app, motion = self.error_maps(gen)
        err = self.combined_map(app, motion)
        p = self.cfg.score_patch
        rec = pooled_error(err, p)
        d = self.discriminator
        feat = feature_distance(d.frame_features(gen.target), d.frame_features(gen.fake))
        raw = self.combine(rec, feat)
        return Scored(raw, rec, feat, pooled_error(app, p),
                      pooled_error(motion, p) if motion is not None else torch.zeros_like(rec),
                      local_error_map(err, p) if heatmap else None)

    def score(self, clip: torch.Tensor, positions: slice | None = None) -> torch.Tensor:
        """(B, T, C_in, H, W) -> (B, T') raw per-frame scores (higher = more anomalous)."""
        return self.score_detailed(clip, positions).raw

    def anomaly_map(self, clip: torch.Tensor, positions: slice | None = None) -> torch.Tensor:
        """(B, T, C_in, H, W) -> (B, T', H, W) per-pixel anomaly map."""
        return self.score_detailed(clip, positions, heatmap=True).heatmap

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw scores -> units of normal-data standard deviations above the normal mean."""
        return (raw - self.score_mean) / self.score_std

    def set_score_statistics(self, mean: float, std: float, threshold: float) -> None:
        self.score_mean.fill_(mean)
        self.score_std.fill_(max(std, 1e-12))
        self.threshold.fill_(threshold)
