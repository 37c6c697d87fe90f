"""A camera that loses frames, with the motion band's flow scaled by each frame's gap and without.

    python benchmarks/frame_drops.py --data data/ucsd_ped2 [--checkpoint service/assets/default.safetensors]
        [--drop 0.1] [--seed 0] [--out runs/frame_drops]

A camera loses frames: the network drops them, or the scorer is busy and the service drops them (a service at
capacity drops a tenth or more). The frame after a lost one is two frame periods after the one before it, and its
optical flow is twice as long. Each test clip of the dataset (the checkpoint's own scene, scored with its own
statistics and threshold) loses each frame with probability --drop; the frames kept are preprocessed as the service
preprocesses a camera's (model.SequencePreprocessor) with the gap in frame periods (the service's rule) and as if
each came one period after the one before (the rule before), and scored with the checkpoint's window rule.

Reported for each: frame-level micro AUC over the kept frames, the share of normal (false-positive rate) and
anomalous (recall) kept frames flagged at the threshold, and the false-positive rate of the normal frames that came
after a gap; beside them the no-learning flow speed of `ocrgan eval` on the same kept frames, and every figure on
the clips without drops. Writes summary.json under --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from model import ScorePostprocessor, SequencePreprocessor, load_checkpoint
from model.motion import resize_area
from model.windows import iter_clip_scores
from training.baselines import flow_size, flow_speed
from training.discover import find_sequences


def published(model, frames: list[np.ndarray], gaps: np.ndarray, use_gaps: bool) -> np.ndarray:
    """The normalised scores the service would publish for these frames of one sequence."""
    prep = SequencePreprocessor(model.cfg)
    inputs = torch.stack([prep(f, float(g) if use_gaps else 1.0) for f, g in zip(frames, gaps, strict=True)])
    post = ScorePostprocessor.for_model(model)
    return np.array([post(float(r))[1] for s in iter_clip_scores(model, inputs) for r in s.raw])


def rates(scores: np.ndarray, labels: np.ndarray, after_gap: np.ndarray, threshold: float) -> dict[str, float]:
    flags = scores > threshold
    normal = labels == 0
    return {"micro_auc": round(float(roc_auc_score(labels, scores)), 4),
            "false_positive_rate": round(float(flags[normal].mean()), 4),
            "recall": round(float(flags[~normal].mean()), 4),
            "false_positive_rate_after_a_gap": round(float(flags[normal & after_gap].mean()), 4)
            if (normal & after_gap).any() else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--checkpoint", default="service/assets/default.safetensors")
    ap.add_argument("--drop", type=float, default=0.1, help="probability that a frame is lost")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/frame_drops")
    args = ap.parse_args()
    model, info = load_checkpoint(args.checkpoint, "cpu")
    threshold = float(model.threshold)
    rng = np.random.default_rng(args.seed)
    runs = {"all_frames": 0.0, f"dropping_{args.drop:g}": args.drop}
    summary: dict = {"checkpoint": args.checkpoint, "drop": args.drop, "seed": args.seed}
    for name, p in runs.items():
        scores: dict[str, list[np.ndarray]] = {"gaps": [], "one_period": [], "flow_speed": []}
        labels, after = [], []
        for seq in find_sequences(args.data, "test"):
            frames = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in seq.frames]
            keep = rng.random(len(frames)) >= p
            keep[0] = True
            idx = np.flatnonzero(keep)
            gaps = np.diff(idx, prepend=idx[0] - 1).astype(float)
            kept = [frames[i] for i in idx]
            scores["gaps"].append(published(model, kept, gaps, True))
            scores["one_period"].append(published(model, kept, gaps, False))
            size = flow_size(info.config.hw)
            scores["flow_speed"].append(flow_speed(np.stack([resize_area(f, size) for f in kept])).numpy())
            labels.append(seq.labels[idx])
            after.append(gaps > 1)
        y, a = np.concatenate(labels).astype(int), np.concatenate(after)
        summary[name] = {"frames": len(y), "after_a_gap": int(a.sum()),
                         "model_flow_per_period": rates(np.concatenate(scores["gaps"]), y, a, threshold),
                         "model_flow_per_frame": rates(np.concatenate(scores["one_period"]), y, a, threshold),
                         "flow_speed": round(float(roc_auc_score(y, np.concatenate(scores["flow_speed"]))), 4)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
