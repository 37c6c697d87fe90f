"""The one configuration that builds a model; it travels inside every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

TEMPORAL_VARIANTS = ("none", "basic", "multiscale", "hierarchical", "adaptive", "full", "coarse")
OBJECTIVES = ("predict", "reconstruct", "mixed")


@dataclass(frozen=True)
class OCRGANConfig:
    # --- input -----------------------------------------------------------------------------
    num_frames: int = 16  # T: frames per window
    isize: int | tuple[int, int] = 64  # working size: an int (square) or (height, width)
    nc: int = 3  # appearance channels: 3 (RGB) or 1 (luma)
    motion: bool = False  # the motion band: optical flow from the previous frame as 2 more input channels
    flow_scale: int = 2  # the flow is computed on frames this many times the working size, then shrunk to it
    steady: bool = False  # the motion band's flow less the camera's own motion (a sway, a shake: model.motion)
    gated: bool = False  # the motion band's flow only where the frame changed: none from flat areas' noise
    # (model.motion.changed)
    exposure: tuple[float, float] | None = None  # each frame's appearance shifted and scaled to this mean and
    # standard deviation ([-1, 1] units), so light or exposure changing over the whole frame is not an anomaly
    # (model.preprocess.appearance); None: as it comes
    drops: bool = False  # thin bright features new in a frame (rain; falling snow mostly stays) taken out before
    # the model sees it (model.preprocess.DropFilter)
    # --- widths ----------------------------------------------------------------------------
    nz: int = 100  # discriminator feature size per frame
    ngf: int = 64  # generator base width
    ndf: int = 64  # discriminator base width
    depth: int = 0  # U-Net downsamplings; 0 = derived from the size (smallest side down to 4)
    # --- temporal modelling ----------------------------------------------------------------
    temporal: str = "full"  # one of TEMPORAL_VARIANTS; "none" is the per-frame OCR-GAN
    heads: int = 4  # attention heads (reduced automatically where channels do not divide)
    objective: str = "predict"  # "predict": frame t from frames < t (causal); "reconstruct": the clip itself;
    # "mixed": the appearance of frame t reconstructed from frames <= t, its flow predicted from frames < t (causal)
    residual: bool = True  # predict: each appearance band is the previous frame's plus a predicted change
    skip_cut: int = 0  # the decoder does without the skips of this many of the finest levels (a bottleneck)
    cs_reduction: int = 2  # channel selection: d = max(C / r, 32)
    # --- training losses (seed defaults) ---------------------------------------------------
    w_adv: float = 1.0
    w_con: float = 50.0
    w_lat: float = 1.0
    w_temporal_consistency: float = 0.1
    w_temporal_motion: float = 0.05
    w_temporal_reg: float = 0.01
    w_flow: float = 10.0  # L1 of the predicted flow (pixels per frame)
    # --- scoring ---------------------------------------------------------------------------
    w_score_feat: float = 0.25  # weight of the (scaled) discriminator-feature distance
    w_score_app: float = 1.0  # weight of the (scaled) appearance error
    w_score_motion: float = 1.0  # weight of the (scaled) flow error (with the motion band)
    w_score_speed: float = 0.0  # weight of the (scaled) flow magnitude itself (with the motion band): what no
    # prediction can explain away
    w_score_dir: float = 0.0  # weight of the (scaled) direction surprise (with the motion band): motion the way, or
    # where, the training footage did not move
    w_score_mem: float = 0.0  # weight of the (scaled) distance to the memory of normal patches (memory_size > 0)
    w_score_grey: float = 0.0  # weight of the (scaled) distance to the remembered grey levels (memory_grey)
    speed_classes: int = 1  # the `dir` cue's prior counts each direction at this many speeds, octaves above the
    # moving threshold (model.directions); 1: direction alone
    direction_memory: int = 0  # with the motion band: the `dir` cue is each patch's distance to the nearest of this
    # many patches of the training footage's motion (model.directions.motion_patches) instead of the per-pixel prior
    memory_size: int = 0  # patch features of the training footage kept in the memory (0: no memory, no `mem` cue)
    memory_grey: bool = False  # the memory also keeps the patches' grey levels, in a bank of their own (model.memory)
    score_patch: int = 16  # error pooled as the max over patch means (0 = mean over the frame)
    score_smoothing: float = 0.0  # causal EMA factor on published scores (0 = none)
    stride: int = 8  # frames between scored windows; each window publishes its last `stride` frames
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # free-form notes

    def __post_init__(self) -> None:
        if isinstance(self.isize, list):
            object.__setattr__(self, "isize", tuple(self.isize))
        if self.exposure is not None:
            object.__setattr__(self, "exposure", tuple(float(v) for v in self.exposure))
            if len(self.exposure) != 2 or not -1 < self.exposure[0] < 1 or not 0 < self.exposure[1] <= 1:
                raise ValueError(f"exposure must be (mean in (-1, 1), std in (0, 1]), got {self.exposure}")
        h, w = self.hw
        if self.temporal not in TEMPORAL_VARIANTS:
            raise ValueError(f"temporal must be one of {TEMPORAL_VARIANTS}, got {self.temporal!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.nc not in (1, 3):
            raise ValueError(f"nc must be 1 or 3, got {self.nc}")
        if self.num_frames < 2:
            raise ValueError("num_frames must be at least 2")
        if not 1 <= self.stride <= self.num_frames:
            raise ValueError(f"stride must be in [1, num_frames], got {self.stride}")
        d = self.unet_depth
        if h % (2**d) or w % (2**d):
            raise ValueError(f"size {h}x{w} must be divisible by 2**depth = {2**d}")
        if min(h, w) // (2**d) < 1:
            raise ValueError(f"depth {d} is too deep for size {h}x{w}")
        if not 0.0 <= self.score_smoothing < 1.0:
            raise ValueError("score_smoothing must be in [0, 1)")
        if self.flow_scale < 1:
            raise ValueError("flow_scale must be at least 1")
        if self.speed_classes < 1:
            raise ValueError("speed_classes must be at least 1")
        if self.direction_memory < 0:
            raise ValueError("direction_memory must be at least 0")
        if self.direction_memory and not self.motion:
            raise ValueError("direction_memory needs the motion band (motion = true): it remembers patches of flow")
        if self.memory_size < 0:
            raise ValueError("memory_size must be at least 0")
        if self.memory_grey and not self.memory_size:
            raise ValueError("memory_grey needs a memory (memory_size > 0)")
        if not 0 <= self.skip_cut < d:
            raise ValueError(f"skip_cut must be in [0, {d - 1}] for a depth-{d} U-Net")

    @property
    def causal(self) -> bool:
        """Whether frame t may only depend on frames up to t (every objective but "reconstruct")."""
        return self.objective != "reconstruct"

    @property
    def hw(self) -> tuple[int, int]:
        """Working (height, width)."""
        if isinstance(self.isize, int):
            return (self.isize, self.isize)
        h, w = self.isize
        return (int(h), int(w))

    @property
    def in_channels(self) -> int:
        """Channels of an input frame: appearance, then the flow (dx, dy) with the motion band."""
        return self.nc + (2 if self.motion else 0)

    @property
    def flow_hw(self) -> tuple[int, int]:
        """Size of the frames the flow is computed on."""
        h, w = self.hw
        return (h * self.flow_scale, w * self.flow_scale)

    @property
    def unet_depth(self) -> int:
        """Downsamplings: the given depth, or halve while both sides are even and above 4 pixels."""
        if self.depth:
            return self.depth
        (h, w), d = self.hw, 0
        while min(h, w) > 4 and h % 2 == 0 and w % 2 == 0:
            h, w, d = h // 2, w // 2, d + 1
        return max(d, 1)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["isize"] = list(self.hw) if not isinstance(self.isize, int) else self.isize
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OCRGANConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown config keys: {unknown}")
        return cls(**d)

    def replace(self, **changes: Any) -> OCRGANConfig:
        return dataclasses.replace(self, **changes)
