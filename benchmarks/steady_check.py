"""How often the camera's motion is taken out of the flow: of a swaying camera, and of a still one whose walkers'
motion fills the ground, for settings of the check that the frames bear that motion out.

    python benchmarks/steady_check.py --data data/ucsd_ped2 [--split training] [--clips 6] [--frames 120]
        [--amplitudes 0.5,1,3] [--settings 3:3,2:2,2:1.5,2:1.25] [--out runs/steady_check] [--seed 0]

A setting is `explains:keeps` (model.motion.Steadier): the ratio of edge pixels the warp brings closer to the next
frame over those it takes further that starts a camera moving, and the one that keeps it moving the frame after.

  sway     the first --frames frames of --clips clips of the split, seen through the view of
           benchmarks/new_camera.py while the camera sways in gusts as in benchmarks/camera_conditions.py (alternate
           spans of 50 frames, --amplitude in pixels of the 240x360 frame), at the motion band's flow size
           (128x192). Reported: the share of the frames in gusts whose flow the Steadier took the motion out of
           (the higher the better; frames where the sway happens to stand still count as misses for every setting).
  walkers  the synthetic walkers of testkit.synthetic.moving_shapes (seeds 1-8, 16 frames each), a still camera
           over a ground striped along their way, which optical flow fills with their motion. Reported: the share
           of frames read as the camera's motion (the lower the better; it should be 0).
  still    the same clips as `sway` with no sway: the share of frames read as the camera's motion.

No labels are read. Writes summary.json under --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
from camera_conditions import spans, sway
from new_camera import CROP

from model.motion import FLOW_FINEST_SCALE, Steadier, resize_area
from testkit.synthetic import moving_shapes
from training.baselines import flow_size


def flows(frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each (flow, prev, cur) of a sequence of uint8 grey frames, DIS as the motion band computes it."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    dis.setFinestScale(FLOW_FINEST_SCALE)
    return [(dis.calc(a, b, None), a, b) for a, b in itertools.pairwise(frames)]


def share_moving(sequences: list[list[tuple]], held: list[np.ndarray], explains: float, keeps: float) -> float:
    """The share of the frames where `held` is true that a Steadier (one per sequence) took motion out of."""
    hits = total = 0
    for pairs, on in zip(sequences, held, strict=True):
        steadier = Steadier(explains, keeps)
        for (flow, prev, cur), o in zip(pairs, on[1:], strict=True):
            steadier(flow, prev, cur)
            hits += bool(o and steadier.moving)
            total += bool(o)
    return round(hits / max(total, 1), 4)


def view(frame: np.ndarray) -> np.ndarray:
    r0, r1, c0, c1 = CROP
    grey = cv2.cvtColor(np.ascontiguousarray(frame[r0:r1, c0:c1][:, ::-1]), cv2.COLOR_BGR2GRAY)
    return resize_area(grey, flow_size(grey.shape))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="UCSD Ped2 in the frame-folder layout")
    ap.add_argument("--split", default="training", choices=("training", "testing"))
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--amplitudes", default="0.5,1,3")
    ap.add_argument("--settings", default="3:3,2:2,2:1.5,2:1.25")
    ap.add_argument("--out", default="runs/steady_check")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    settings = [tuple(float(x) for x in s.split(":")) for s in args.settings.split(",")]
    clips = sorted(p for p in (Path(args.data) / args.split / "frames").iterdir() if p.is_dir())[: args.clips]
    footage = [[cv2.imread(str(f)) for f in sorted(c.iterdir())[: args.frames]] for c in clips]

    cases: dict[str, tuple[list, list]] = {}
    still = [[view(f) for f in frames] for frames in footage]
    cases["still"] = ([flows(s) for s in still], [np.ones(len(s), bool) for s in still])
    for amplitude in (float(a) for a in args.amplitudes.split(",")):
        rng = np.random.default_rng(args.seed)
        seqs, held = [], []
        for frames in footage:
            on = spans(len(frames), rng)
            seqs.append(flows([view(change(f)) for f, change in zip(frames, sway(on, amplitude, rng), strict=True)]))
            held.append(on)
        cases[f"sway_{amplitude:g}"] = (seqs, held)
    walkers = [moving_shapes(16, seed=s)[0] for s in range(1, 9)]
    cases["walkers"] = ([flows(list(w)) for w in walkers], [np.ones(len(w), bool) for w in walkers])

    summary = {"split": args.split, "clips": len(clips), "frames": args.frames,
               "settings": {f"{e:g}:{k:g}": {name: share_moving(seqs, held, e, k)
                                              for name, (seqs, held) in cases.items()} for e, k in settings}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
