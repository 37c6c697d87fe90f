"""The assembled temporal OCR-GAN: split, dual-stream generator, discriminator, scoring."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.config import OCRGANConfig
from model.discriminator import FrameDiscriminator
from model.frequency import OmniFrequencySplit
from model.generator import DualStreamUNet
from model.scoring import combine_scores, error_map, feature_distance, local_error_map, pooled_error
from model.temporal import TemporalModule


@dataclass
class Generated:
    fake: torch.Tensor  # (B, T', C, H, W) the predicted / reconstructed frames
    fake_lap: torch.Tensor  # (B, T', C, H, W)
    fake_res: torch.Tensor  # (B, T', C, H, W)
    target: torch.Tensor  # (B, T', C, H, W) the real frames they stand for


@dataclass
class Scored:
    raw: torch.Tensor  # (B, T') combined per-frame score
    rec: torch.Tensor  # (B, T') pooled reconstruction error
    feat: torch.Tensor  # (B, T') discriminator-feature distance
    heatmap: torch.Tensor | None  # (B, T', H, W) local reconstruction error, when asked for


class OCRGANVideo(nn.Module):
    """Clips (B, T, C, H, W) in [-1, 1] -> per-frame anomaly scores.

    With objective "predict", the frame at position t is predicted from the frames before it (the
    generator sees the clip shifted by one frame, the first frame repeated, and every temporal
    module is causal), by default as the previous frame plus a predicted change of each band, so
    an untrained model already scores like frame differencing and training learns normal motion;
    with "reconstruct" the clip is reconstructed from itself, as in OCR-GAN.
    Score statistics and the threshold are buffers, so they are saved with the weights.
    """

    def __init__(self, cfg: OCRGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.split = OmniFrequencySplit()
        self.generator = DualStreamUNet(cfg)
        self.discriminator = FrameDiscriminator(cfg)
        self.register_buffer("rec_scale", torch.tensor(1.0))  # typical rec error on normal data
        self.register_buffer("feat_scale", torch.tensor(1.0))  # typical feature distance on normal data
        self.register_buffer("score_mean", torch.tensor(0.0))  # of published scores on normal data
        self.register_buffer("score_std", torch.tensor(1.0))
        self.register_buffer("threshold", torch.tensor(3.0))  # on the normalised scale

    # --- generation ----------------------------------------------------------------------------
    def generator_input(self, clip: torch.Tensor) -> torch.Tensor:
        if self.cfg.objective == "predict":
            return torch.cat([clip[:, :1], clip[:, :-1]], dim=1)
        return clip

    def forward(self, clip: torch.Tensor, positions: slice | None = None,
                generator: nn.Module | None = None) -> Generated:
        """`generator` replaces self.generator for this call (a distributed wrapper of it, in training)."""
        lap, res = self.split(self.generator_input(clip))
        fake_lap, fake_res = (generator or self.generator)(lap, res, positions)
        pos = positions if positions is not None else slice(None)
        if self.generator.residual:  # the bands of the previous frame plus their predicted change
            fake_lap, fake_res = lap[:, pos] + fake_lap, res[:, pos] + fake_res
        return Generated(fake_lap + fake_res, fake_lap, fake_res, clip[:, pos])

    def attention_maps(self) -> list[torch.Tensor]:
        """Attention probabilities recorded in the last training forward pass."""
        maps: list[torch.Tensor] = []
        for m in self.modules():
            if isinstance(m, TemporalModule):
                maps.extend(m.attention_maps())
        return maps

    # --- scoring -------------------------------------------------------------------------------
    @torch.no_grad()
    def score_detailed(self, clip: torch.Tensor, positions: slice | None = None, heatmap: bool = False) -> Scored:
        gen = self(clip, positions)
        err = error_map(gen.target, gen.fake)
        rec = pooled_error(err, self.cfg.score_patch)
        d = self.discriminator
        feat = feature_distance(d.frame_features(gen.target), d.frame_features(gen.fake))
        raw = combine_scores(rec, feat, self.cfg.w_score_rec, self.cfg.w_score_feat, self.rec_scale, self.feat_scale)
        return Scored(raw, rec, feat, local_error_map(err, self.cfg.score_patch) if heatmap else None)

    def score(self, clip: torch.Tensor, positions: slice | None = None) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T') raw per-frame scores (higher = more anomalous)."""
        return self.score_detailed(clip, positions).raw

    def anomaly_map(self, clip: torch.Tensor, positions: slice | None = None) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T', H, W) per-pixel anomaly map."""
        return self.score_detailed(clip, positions, heatmap=True).heatmap

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw scores -> units of normal-data standard deviations above the normal mean."""
        return (raw - self.score_mean) / self.score_std

    def set_score_statistics(self, mean: float, std: float, threshold: float) -> None:
        self.score_mean.fill_(mean)
        self.score_std.fill_(max(std, 1e-12))
        self.threshold.fill_(threshold)
