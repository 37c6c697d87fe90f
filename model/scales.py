"""The units the score's cues are measured in: each cue's extreme on normal footage, the training footage's (stored
in the checkpoint) or a scene's own (a camera's or a clip's calibration)."""

from __future__ import annotations

import torch

from model.ocrgan import OCRGANVideo
from model.scoring import CUES
from model.windows import WindowScores

SCALE_QUANTILE = 0.99  # a cue's unit: this quantile of its per-frame values on normal footage
SCENE_SCALE_FLOOR = 0.25  # a scene's unit of a cue is at least this share of the checkpoint's
MEMORY_CUES = ("mem", "grey")  # the cues that measure a frame against the training footage's own patches
FOREIGN_MEMORY = 1.5  # a scene whose normal frames reach this many times the checkpoint's unit of a memory cue does
# not look like the training footage (new footage of that scene reaches about 1: the checkpoint's unit is read on
# footage held out of the memory), so the memory is left out of its score


def extreme(values: torch.Tensor) -> float:
    """The SCALE_QUANTILE of per-frame values on normal footage (1 when they are all zero)."""
    return float(torch.quantile(values.float(), SCALE_QUANTILE)) or 1.0


def cue_values(parts: list[WindowScores]) -> dict[str, torch.Tensor | None]:
    """Each cue's per-frame values over scored windows (None for a cue the model does not have)."""
    cues = [p.cues() for p in parts]
    return {k: torch.cat([c[k] for c in cues]) if cues and cues[0][k] is not None else None for k in CUES}


def scene_scales(model: OCRGANVideo, cues: dict[str, torch.Tensor | None],
                 floor: float = SCENE_SCALE_FLOOR) -> dict[str, float]:
    """The unit of each cue on a scene's own normal footage (`cues`: per-frame values of its frames): its extreme
    there, but at least `floor` of the checkpoint's, so a still scene does not turn an idle cue's noise into
    anomalies.

    A memory cue (MEMORY_CUES) whose extreme there is FOREIGN_MEMORY times the checkpoint's or more gets no unit: it
    is left out of the scene's score (model.scoring.combine_cues). The memory holds the training footage's patches;
    on a scene that looks otherwise every patch is far from them, so the cue reads how unlike the training footage a
    frame is (busier frames, more unlike patches) rather than what is new in the scene. On clean footage of two
    views of Ped2 that the checkpoint never saw it added nothing to the ranking, and a minute's warm-up that
    happened to be quiet set a unit the busy minutes passed: up to 69% of normal frames flagged. In snow or a step of
    light it still ranked frames, which the rule gives up (docs/results.md, "A camera of another look")."""
    ckpt = model.scales()
    units = {k: max(float(torch.quantile(v.float(), SCALE_QUANTILE)), floor * ckpt[k]) if v is not None and len(v)
             else ckpt[k] for k, v in cues.items()}
    return {k: u for k, u in units.items() if not (k in MEMORY_CUES and u >= FOREIGN_MEMORY * ckpt[k])}
