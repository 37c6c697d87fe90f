"""The assembled temporal OCR-GAN: band split, multi-stream generator, discriminator, scoring."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.config import OCRGANConfig
from model.directions import (
    DIRECTIONS,
    direction_counts,
    log_prior,
    motion_patch_count,
    motion_patches,
    motion_width,
    moving_threshold,
    surprise_map,
)
from model.discriminator import FrameDiscriminator
from model.frequency import OmniFrequencySplit
from model.generator import MultiStreamUNet
from model.memory import (
    MAX_PATCHES,
    MEMORY_LEVEL,
    coreset,
    nearest_distance,
    patch_features,
    pixel_patches,
    pixel_width,
)
from model.motion import flow_length
from model.scoring import (
    CUES,
    MAP_CUES,
    combine_cues,
    error_map,
    feature_distance,
    flow_error_map,
    local_error_map,
    pooled_error,
)
from model.temporal import TemporalModule


@dataclass
class Generated:
    fake: torch.Tensor  # (B, T', C, H, W) the predicted / reconstructed appearance
    fake_lap: torch.Tensor  # (B, T', C, H, W)
    fake_res: torch.Tensor  # (B, T', C, H, W)
    target: torch.Tensor  # (B, T', C, H, W) the real appearance they stand for
    fake_flow: torch.Tensor | None = None  # (B, T', 2, H, W) the predicted motion band, with one
    target_flow: torch.Tensor | None = None  # (B, T', 2, H, W)
    features: torch.Tensor | None = None  # (B, T', h', w', C) patch features of the frames, with a memory


@dataclass
class ErrorMaps:
    app: torch.Tensor  # (B, T', H, W) squared appearance error
    motion: torch.Tensor | None = None  # (B, T', H, W) length of the flow's deviation from its prediction
    speed: torch.Tensor | None = None  # (B, T', H, W) length of the flow itself
    dir: torch.Tensor | None = None  # (B, T', H, W) surprise of the flow's direction where it moves (model.directions)
    mem: torch.Tensor | None = None  # (B, T', H, W) distance of the patch around each pixel to the memory
    grey: torch.Tensor | None = None  # (B, T', H, W) the same for its grey levels (memory_grey)


@dataclass
class Scored:
    raw: torch.Tensor  # (B, T') combined per-frame score
    rec: torch.Tensor  # (B, T') patch maximum of the error map (the scaled, weighted cue maps' pixel-wise maximum)
    feat: torch.Tensor  # (B, T') discriminator-feature distance
    app: torch.Tensor  # (B, T') patch maximum of the appearance error alone
    motion: torch.Tensor | None  # (B, T') patch maximum of the flow error alone (None without the motion band)
    speed: torch.Tensor | None  # (B, T') patch maximum of the flow magnitude alone (None without the motion band)
    dir: torch.Tensor | None  # (B, T') patch maximum of the direction surprise alone (None without the motion band)
    mem: torch.Tensor | None  # (B, T') patch maximum of the distance to the memory alone (None without a memory)
    grey: torch.Tensor | None  # (B, T') the same for the remembered grey levels (None without memory_grey)
    maps: torch.Tensor | None  # (B, T', k, H, W) the unscaled map of each cue the heatmap shows
    # (OCRGANVideo.heat_cues), when asked for: OCRGANVideo.heatmap draws it in the units of the scene


class OCRGANVideo(nn.Module):
    """Clips (B, T, C_in, H, W) -> per-frame anomaly scores: C_in is the appearance (nc channels in
    [-1, 1]) and, with the motion band, the flow from the previous frame (2 channels, pixels per frame).

    With objective "predict", frame t is predicted from the frames before it (the generator sees the clip
    shifted by one frame, the first frame repeated, and every temporal module is causal); with
    "reconstruct" the clip is reconstructed from itself, as in OCR-GAN; with "mixed" the appearance of
    frame t is reconstructed (through the decoder's bottleneck) and its flow predicted from the past.
    The score of a frame is its largest weighted cue, each cue in units of its extreme on normal data: the
    appearance error, the flow error, the flow's own magnitude, the surprise of its direction where it moves and,
    with a memory, each patch's distance to the nearest remembered normal patch (each the largest mean over
    patches of its map), and the distance between the discriminator's features of the frame and of its
    prediction. Scales, score statistics, the threshold, the direction prior and the memory are buffers, saved with
    the weights; a scene calibration may replace the scales (`scales=` of `combine`), and leave a cue out by giving
    it none.
    """

    def __init__(self, cfg: OCRGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.split = OmniFrequencySplit()
        self.generator = MultiStreamUNet(cfg)
        read = {lvl for lvl, used in enumerate(self.generator.use_skip) if used} | {cfg.unet_depth - 1}
        if cfg.memory_size:
            read.add(self.memory_level)
        self.generator.idle_levels = frozenset(range(cfg.unet_depth)) - read
        self.discriminator = FrameDiscriminator(cfg)
        # each part's extreme on normal data (a high quantile of its per-frame value), the unit it is scored in
        self.register_buffer("app_scale", torch.tensor(1.0))
        self.register_buffer("motion_scale", torch.tensor(1.0))
        self.register_buffer("speed_scale", torch.tensor(1.0))
        self.register_buffer("feat_scale", torch.tensor(1.0))
        self.register_buffer("dir_scale", torch.tensor(1.0))
        if cfg.memory_size:  # patch features of the training footage (model.memory), zeros until set, and their unit
            self.register_buffer("mem_scale", torch.tensor(1.0))
            self.register_buffer("memory", torch.zeros(cfg.memory_size, sum(self.memory_parts)))
            if cfg.memory_grey:  # the unit of the distance to the remembered grey levels
                self.register_buffer("grey_scale", torch.tensor(1.0))
        if cfg.motion:  # which way things move where in the training footage (uniform until set), and what moves
            classes = DIRECTIONS * cfg.speed_classes
            self.register_buffer("direction_prior", torch.full((classes, *cfg.hw), -math.log(classes)))
            self.register_buffer("moving_threshold", torch.tensor(0.1))
            if cfg.direction_memory:  # the training footage's patches of motion, zeros until set (model.directions)
                width = motion_width(cfg.speed_classes)
                self.register_buffer("direction_bank", torch.zeros(cfg.direction_memory, width))
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

    @property
    def context_frames(self) -> int:
        """Frames before a frame that its generator input reads: the previous frame where the generator sees the
        clip shifted, and those the input fusion reads."""
        return (1 if self.cfg.objective in ("predict", "mixed") else 0) + self.generator.fusion_context

    def streams(self, clip: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The generator's input streams of a clip (B, T, C_in, H, W), and its appearance bands (lap, res)."""
        app, flow = self.generator_input(clip)
        lap, res = self.split(app)
        return [lap, res, *([flow] if self.cfg.motion else [])], lap, res

    def forward(self, clip: torch.Tensor, positions: slice | None = None,
                generator: nn.Module | None = None, context: int = 0) -> Generated:
        """`generator` replaces self.generator for this call (a distributed wrapper of it, in training). The first
        `context` frames of the clip only give the frames after them their past (see context_frames); positions
        count from the first frame after them."""
        streams, lap, res = self.streams(clip)
        pos = positions if positions is not None else slice(None)
        skips, skip_pos = None, pos
        if (self.cfg.memory_size and generator is None) or context:  # scoring
            t = clip.shape[1] - context
            start, stop, step = pos.indices(t)
            if stop == t and step == 1 and start > 0:  # the window's last frames: the temporal modules for them only
                skips, skip_pos = self.generator.encode(streams, context, last=t - start), slice(None)
            else:
                skips = self.generator.encode(streams, context)
            fake = self.generator.decode(skips, None if skip_pos == slice(None) else positions)
        else:
            fake = (generator or self.generator)(streams, positions)
        frames = slice(context, None)
        return self.generated(clip[:, frames][:, pos], lap[:, frames][:, pos], res[:, frames][:, pos], fake, skips,
                              skip_pos)

    def generated(self, target: torch.Tensor, lap: torch.Tensor, res: torch.Tensor, fake: list[torch.Tensor],
                  skips: list[torch.Tensor] | None, pos: slice) -> Generated:
        """What the generator made (`fake`) of the frames at positions `pos` of the window, beside the frames
        themselves (`target`, (B, T', C_in, H, W)) and their appearance bands; with a memory, the frames' patch
        features from the window's `skips`."""
        nc = self.cfg.nc
        features = None
        if self.cfg.memory_size and skips is not None:
            features = patch_features(skips[self.memory_level][:, pos], self.memory_level, self.cfg.score_patch)
            if self.cfg.memory_grey:
                features = torch.cat([features, pixel_patches(target[:, :, :nc], self.memory_level,
                                                              self.cfg.score_patch)], -1)
        fake_lap, fake_res = fake[0], fake[1]
        if self.generator.residual:  # the bands of the previous frame plus their predicted change
            fake_lap, fake_res = lap + fake_lap, res + fake_res
        flows = (fake[2], target[:, :, nc:]) if self.cfg.motion else (None, None)
        return Generated(fake_lap + fake_res, fake_lap, fake_res, target[:, :, :nc], *flows, features)

    @property
    def memory_level(self) -> int:
        """The U-Net level whose features the memory keeps (the finest but one, where the U-Net has one)."""
        return min(MEMORY_LEVEL, self.cfg.unet_depth - 1)

    @property
    def memory_parts(self) -> tuple[int, ...]:
        """Widths of the memory's column groups: the learned features, then with `memory_grey` the grey levels."""
        parts = (self.generator.widths[self.memory_level],)
        if self.cfg.memory_grey:
            parts += (pixel_width(self.cfg.nc, self.memory_level, self.cfg.score_patch, self.cfg.hw),)
        return parts

    @torch.no_grad()
    def set_memory(self, features: torch.Tensor) -> None:
        """Fill the memory from patch features of normal footage, (N, C) (Generated.features, flattened): a
        coreset of them (model.memory), each part's on its own."""
        bank = coreset(features, self.cfg.memory_size, parts=self.memory_parts)
        self.memory.zero_()
        self.memory[:len(bank)] = bank.to(self.memory)
        if len(bank) < len(self.memory):  # fewer patches than places: repeat them, the nearest distance is the same
            self.memory[len(bank):] = bank[torch.arange(len(self.memory) - len(bank)) % len(bank)].to(self.memory)

    def attention_maps(self) -> list[torch.Tensor]:
        """Attention probabilities recorded in the last training forward pass (of the generator's levels that
        run, not the idle ones)."""
        idle = {id(self.generator.temporal[level]) for level in self.generator.idle_levels}
        maps: list[torch.Tensor] = []
        for m in self.modules():
            if isinstance(m, TemporalModule) and id(m) not in idle:
                maps.extend(m.attention_maps())
        return maps

    # --- scoring -------------------------------------------------------------------------------
    def error_maps(self, gen: Generated) -> ErrorMaps:
        """The per-pixel cues, unscaled: appearance error; with the motion band, flow error, speed and direction
        surprise; with a filled memory, the distance to it (and with memory_grey, to its grey levels)."""
        app = error_map(gen.target, gen.fake)
        mem, grey = self.memory_maps(gen, app.shape[-2:])
        if gen.fake_flow is None:
            return ErrorMaps(app, mem=mem, grey=grey)
        flow = gen.target_flow
        return ErrorMaps(app, flow_error_map(flow, gen.fake_flow), flow_length(flow.float(), 2),
                         self.direction_map(flow), mem, grey)

    def direction_map(self, flow: torch.Tensor) -> torch.Tensor:
        """(B, T', 2, H, W) flow -> (B, T', H, W) the `dir` cue's map: with a motion memory, each patch's distance
        to the nearest remembered patch of normal motion, spread back over the pixels it covers; else each pixel's
        surprise under the per-pixel prior (model.directions)."""
        threshold = float(self.moving_threshold)
        if not self.cfg.direction_memory:
            return surprise_map(flow, self.direction_prior, threshold)
        patches = motion_patches(flow.flatten(0, 1), threshold, self.cfg.speed_classes, self.cfg.score_patch)
        d = nearest_distance(patches, self.direction_bank)  # (B*T', h', w')
        return F.interpolate(d[:, None], size=flow.shape[-2:], mode="bilinear",
                             align_corners=False)[:, 0].unflatten(0, flow.shape[:2])

    def memory_maps(self, gen: Generated, hw: tuple[int, int]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(B, T', H, W) each: each patch's distance to its nearest normal patch, spread back over the pixels it
        covers, by its learned features and (with memory_grey, else None) by its grey levels."""
        if gen.features is None:
            return None, None
        if not torch.compiler.is_exporting() and not bool(self.memory.any()):  # not filled yet (in training); an
            return None, None  # exported graph is of a filled memory and cannot branch on its values
        parts = list(self.memory_parts)
        maps = []
        for features, bank in zip(gen.features.split(parts, -1), self.memory.split(parts, 1), strict=True):
            d = nearest_distance(features, bank)  # (B, T', h', w')
            maps.append(F.interpolate(d.flatten(0, 1)[:, None], size=hw, mode="bilinear",
                                      align_corners=False)[:, 0].unflatten(0, d.shape[:2]))
        return maps[0], maps[1] if len(maps) > 1 else None

    @torch.no_grad()
    def set_direction_prior(self, flow: torch.Tensor, chunk: int = 256) -> None:
        """The `dir` cue's prior from the motion band of normal footage, (N, 2, H, W): what counts as moving, and
        which way, and how fast, things move where (model.directions)."""
        step = max(1, len(flow) // 500)
        threshold = moving_threshold(flow_length(flow[::step].float(), 1), self.cfg.speed_classes)
        counts = sum(direction_counts(flow[a:a + chunk], threshold, self.cfg.speed_classes)
                     for a in range(0, len(flow), chunk))
        self.moving_threshold.fill_(threshold)
        self.direction_prior.copy_(log_prior(counts))
        if self.cfg.direction_memory:
            self.set_direction_bank(self.direction_patches(flow, chunk))

    @torch.no_grad()
    def direction_patches(self, flow: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """(N, 2, H, W) flow of normal footage -> (M, motion_width) its patches of motion (motion_patches), at the
        moving threshold set; of long footage a random share of each frame's, at most MAX_PATCHES in all."""
        n = len(flow)
        per_frame = motion_patch_count(*flow.shape[-2:], self.cfg.score_patch)
        share = min(1.0, MAX_PATCHES / max(1, n * per_frame))
        g = torch.Generator().manual_seed(0)
        out = []
        for a in range(0, n, chunk):
            p = motion_patches(flow[a:a + chunk], float(self.moving_threshold), self.cfg.speed_classes,
                               self.cfg.score_patch).flatten(0, 2).cpu()
            out.append(p if share >= 1 else p[torch.rand(len(p), generator=g) < share])
        return torch.cat(out) if out else torch.zeros(0, motion_width(self.cfg.speed_classes))

    @torch.no_grad()
    def set_direction_bank(self, patches: torch.Tensor) -> None:
        """Fill the motion memory from patches of normal motion (direction_patches): a coreset of them."""
        bank = coreset(patches, self.cfg.direction_memory) if len(patches) else patches
        self.direction_bank.zero_()
        if len(bank):
            self.direction_bank.copy_(bank[torch.arange(len(self.direction_bank)) % len(bank)].to(self.direction_bank))

    def weights(self) -> dict[str, float]:
        """The score's weight of each cue (CUES), from the config."""
        return {k: getattr(self.cfg, f"w_score_{k}") for k in CUES}

    def scales(self) -> dict[str, float]:
        """The unit of each cue (CUES): its extreme on the calibration footage."""
        return {k: float(getattr(self, f"{k}_scale", 1.0)) for k in CUES}

    def combined_map(self, maps: ErrorMaps, weights: dict[str, float] | None = None,
                     scales: dict[str, float] | None = None) -> torch.Tensor:
        """The per-pixel picture of the score: at each pixel the largest weighted cue map in its units (what the
        heatmap shows; its largest patch mean is `rec`). A cue of weight 0 or without a unit in `scales` (a scene
        that leaves the memory out: model.scales.scene_scales) is left out, as from the score."""
        w, sc = weights or self.weights(), scales or self.scales()
        out = torch.zeros_like(maps.app)  # the maps are lengths and distances: none is below 0
        for name in MAP_CUES:
            m = getattr(maps, name)
            if m is not None and w[name] > 0 and name in sc:
                out = torch.maximum(out, w[name] * m / sc[name])
        return out

    @property
    def heat_cues(self) -> tuple[str, ...]:
        """The cues whose maps the heatmap shows (Scored.maps, in this order): the appearance error (every model
        has it; of weight 0 it shows nothing), then those of positive weight that this model has (MAP_CUES)."""
        has = {"motion": self.cfg.motion, "speed": self.cfg.motion, "dir": self.cfg.motion,
               "mem": bool(self.cfg.memory_size), "grey": self.cfg.memory_grey}
        w = self.weights()
        return ("app", *(k for k in MAP_CUES[1:] if has[k] and w[k] > 0))

    def heatmap(self, maps: torch.Tensor, scales: dict[str, float] | None = None,
                patch: int | None = None) -> torch.Tensor:
        """(..., k, H, W) maps of the heat cues (Scored.maps) -> (..., H, W) the anomaly heatmap: at each pixel the
        largest weighted cue in the units `scales` (a scene's; the checkpoint's by default), averaged over the
        `patch` x `patch` square around it (the score's patch by default; 1: as it is)."""
        names = self.heat_cues
        if maps.shape[-3] != len(names):
            raise ValueError(f"expected the maps of {len(names)} cues ({', '.join(names)}), got {maps.shape[-3]}")
        combined = self.combined_map(ErrorMaps(**{k: maps.select(-3, i).float() for i, k in enumerate(names)}),
                                     scales=scales)
        h, w = combined.shape[-2:]
        local = local_error_map(combined.reshape(1, -1, h, w), self.cfg.score_patch if patch is None else patch)
        return local.reshape(combined.shape)

    def combine(self, cues: dict[str, torch.Tensor | None], scales: dict[str, float] | None = None) -> torch.Tensor:
        """Per-frame score from per-frame cues (CUES): the largest weighted cue in its units (model.scoring)."""
        return combine_cues(cues, self.weights(), scales or self.scales())

    @torch.no_grad()
    def score_detailed(self, clip: torch.Tensor, positions: slice | None = None, heatmap: bool = False,
                       context: int = 0) -> Scored:
        return self.score_generated(self(clip, positions, context=context), heatmap)

    def score_generated(self, gen: Generated, heatmap: bool = False) -> Scored:
        maps = self.error_maps(gen)
        p = self.cfg.score_patch
        real, fake = self.discriminator.frame_features(torch.cat([gen.target, gen.fake.to(gen.target)])).chunk(2)
        feat = feature_distance(real, fake)  # both through the discriminator in one pass: half its calls
        pooled = {k: pooled_error(m, p) if m is not None else None for k, m in vars(maps).items()}
        err = self.combined_map(maps)
        raw = self.combine({**pooled, "feat": feat})
        heat = None
        if heatmap:  # a memory not yet filled (in training) shows nothing
            shown = [getattr(maps, k) for k in self.heat_cues]
            heat = torch.stack([m if m is not None else torch.zeros_like(maps.app) for m in shown], 2)
        return Scored(raw, pooled_error(err, p), feat, pooled["app"], pooled["motion"], pooled["speed"], pooled["dir"],
                      pooled["mem"], pooled["grey"], heat)

    def score(self, clip: torch.Tensor, positions: slice | None = None) -> torch.Tensor:
        """(B, T, C_in, H, W) -> (B, T') raw per-frame scores (higher = more anomalous)."""
        return self.score_detailed(clip, positions).raw

    def anomaly_map(self, clip: torch.Tensor, positions: slice | None = None) -> torch.Tensor:
        """(B, T, C_in, H, W) -> (B, T', H, W) per-pixel anomaly map, in the checkpoint's units."""
        return self.heatmap(self.score_detailed(clip, positions, heatmap=True).maps)

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw scores -> units of normal-data standard deviations above the normal mean."""
        return (raw - self.score_mean) / self.score_std

    def set_score_statistics(self, mean: float, std: float, threshold: float) -> None:
        self.score_mean.fill_(mean)
        self.score_std.fill_(max(std, 1e-12))
        self.threshold.fill_(threshold)
