"""Golden scores: the shipped checkpoint scores fixed frames as it did when golden_scores.json was written.

The frames are drawn, not decoded: walkers over a textured ground like the demo clip's, then a block crossing
fast, 24 frames at twice the model's working size (the size the service's decoder shrinks camera frames to, and
the size the motion band's flow is computed at). They go through the service's path: load_checkpoint,
SequencePreprocessor (appearance + DIS flow), the window rule and score_windows (iter_clip_scores), then
postprocess for the normalised scores. Per-frame raw scores, each cue and the normalised scores must match
the file to 1e-4 (relative, or absolute near zero): they repeat exactly run to run on one machine, and move
by about 3e-7 with the number of torch threads.

A changed golden_scores.json must come with the reason the scores changed (a new shipped checkpoint, a
deliberate change of preprocessing or scoring); a change nobody meant is what this test is here to catch.
Regenerate with `python -m tests.model.test_golden`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from model import load_checkpoint
from model.config import OCRGANConfig
from model.preprocess import preprocess_sequence
from model.windows import iter_clip_scores, postprocess

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "service" / "assets" / "default.safetensors"
GOLDEN = Path(__file__).with_name("golden_scores.json")
FRAMES = 24
TOLERANCE = 1e-4
# walkers (centre y, centre x, pixels per frame) at a walker's pace; from FAST_FROM on, a block crosses fast
WALKERS = ((50, 20, 1), (70, 120, -1), (85, 60, 2))
FAST_FROM = 14


def golden_frames(height: int, width: int, n: int = FRAMES) -> np.ndarray:
    """uint8 (n, height, width): a scene like the demo clip's, walkers and later a fast block. Drawn analytically
    (no random generator, whose stream may change between numpy versions)."""
    yy, xx = np.mgrid[0:height, 0:width]
    ground = 70 + 50 * yy / height + 12 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    ground += (xx * 73856093 ^ yy * 19349663) % 7 - 3  # grain: an integer hash, -3..3
    frames = np.empty((n, height, width), np.uint8)
    for t in range(n):
        img = ground.copy()
        for y, x, v in WALKERS:
            cv2.ellipse(img, (x + v * t, y), (3, 7), 0, 0, 360, 205.0, -1)
            cv2.circle(img, (x + v * t, y - 10), 2, 215.0, -1)
        if t >= FAST_FROM:
            x = 12 * (t - FAST_FROM)
            cv2.rectangle(img, (x, height // 2 - 6), (x + 22, height // 2 + 6), 245.0, -1)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def frames_digest(frames: np.ndarray) -> str:
    return hashlib.sha256(frames.tobytes()).hexdigest()


def golden_scores(model: torch.nn.Module, cfg: OCRGANConfig) -> dict[str, list[float]]:
    """Per-frame raw score, each cue the model computes, and the normalised score of the golden frames."""
    x = preprocess_sequence(golden_frames(*cfg.flow_hw), cfg)
    parts = list(iter_clip_scores(model, x))
    raw = torch.cat([p.raw for p in parts])
    out = {"raw": raw, "normalised": postprocess(model, raw).normalised}
    for cue in parts[0].cues():
        if parts[0].cues()[cue] is not None:
            out[cue] = torch.cat([p.cues()[cue] for p in parts])
    return {k: [round(float(v), 7) for v in t] for k, t in out.items()}


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(CHECKPOINT)


def test_the_golden_frames_are_those_the_scores_were_recorded_for():
    expected = json.loads(GOLDEN.read_text())
    assert frames_digest(golden_frames(*expected["size"])) == expected["frames_sha256"]


def test_the_shipped_checkpoint_scores_the_golden_frames_as_recorded(shipped):
    model, info = shipped
    expected = json.loads(GOLDEN.read_text())
    assert expected["checkpoint_sha256"] == info.sha256, "the shipped checkpoint changed: regenerate, with a reason"
    actual = golden_scores(model, info.config)
    assert sorted(actual) == sorted(expected["scores"])
    for name, values in expected["scores"].items():
        np.testing.assert_allclose(actual[name], values, rtol=TOLERANCE, atol=TOLERANCE, err_msg=name)


def test_the_fast_block_stands_out_in_the_golden_scores():
    """Scores that hardly change over the clip would make the comparison weak: the fast block must dominate."""
    raw = np.array(json.loads(GOLDEN.read_text())["scores"]["raw"])
    assert len(raw) == FRAMES and raw[FAST_FROM + 2:].min() > 5 * raw[:FAST_FROM].max()


def main() -> None:
    torch.set_num_threads(2)
    model, info = load_checkpoint(CHECKPOINT)
    size = info.config.flow_hw
    doc = {"checkpoint_sha256": info.sha256, "size": list(size), "frames_sha256": frames_digest(golden_frames(*size)),
           "scores": golden_scores(model, info.config)}
    GOLDEN.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
