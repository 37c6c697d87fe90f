"""A memory of how things move where, learning nothing but the training footage: is it a better motion cue than
flow speed, and do its units carry from the training clips to new footage of the scene?

    python benchmarks/motion_memory.py --data data/ucsd_ped2 [--places 0,0.5,1,2] [--size 4096]
        [--scores runs/X/eval/scores.csv] [--out runs/motion_memory]

Each frame's optical flow from the frame before (DIS as the motion band and the flow-speed baseline compute it, on
frames 128 pixels high) is described patch by patch (16x16, stride 8, as flow speed pools it): the share of the
patch's pixels in each of 8 directions x 4 speed bands (0.5-1.5, 1.5-3, 3-6 and over 6 pixels per frame; slower
pixels count as still), and the patch's place in the frame (row and column in [0, 1]) times `place`. The memory
is a greedy k-centre coreset (model.memory.coreset) of the patches of the normal training clips; a frame's score
is its patches' largest distance to the nearest remembered one (model.memory.nearest_distance). So a patch moving
faster, another way or somewhere things never move in training is far from the memory; `place` 0 forgets where.

Reported per `place`, beside flow speed in the same run (micro AUC, online: the raw scores; offline: each clip's
scores min-max scaled):
- the unit the trainer's rule would learn: each quarter of the training clips scored against a memory of the other
  three, the 99.5th percentile of their frames' scores (training/calibrate.py's rule for the learned memory), and
  the share of the test's normal frames beyond it (what a threshold at that unit flags);
- with --scores (an `ocrgan eval` of a checkpoint): the checkpoint's score with this cue in its unit added to the
  largest of its weighted cues (model.scoring.combine_cues), weight 1, and the same with the unit read off the
  test's normal frames (99th percentile; an oracle no deployment has: how much of the gap is the unit's).

Test labels are read for the AUCs and the shares only; nothing is chosen on them. Writes summary.json under --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
from model.memory import coreset, nearest_distance  # noqa: E402
from model.motion import resize_area, sequence_flow  # noqa: E402
from training.auc import minmax  # noqa: E402
from training.baselines import FLOW_PATCH, flow_size  # noqa: E402
from training.decode import iter_frames  # noqa: E402
from training.discover import find_sequences  # noqa: E402

DIRECTIONS = 8
SPEED_EDGES = (0.5, 1.5, 3.0, 6.0)  # pixels per frame at 128 pixels high; below the first, still
FOLDS = 4
QUANTILE = 0.995


def flows(data: str, split: str) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Each sequence's DIS flow (N, h, w, 2) on its frames 128 pixels high, and its labels (test only)."""
    out = {}
    for s in find_sequences(data, split):
        frames = list(iter_frames(s, True))
        grey = np.stack([resize_area(f, flow_size(f.shape[:2])) for f in frames])
        out[s.name] = (sequence_flow(grey), s.labels)
    return out


def describe(flow: np.ndarray, place: float) -> torch.Tensor:
    """(N, h, w, 2) flow -> (N, h', w', DIRECTIONS * len(SPEED_EDGES) + 2) patch descriptors."""
    f = torch.from_numpy(np.ascontiguousarray(flow)).float()
    speed = f.norm(dim=-1)
    direction = ((torch.atan2(f[..., 1], f[..., 0]) + math.pi) / (2 * math.pi) * DIRECTIONS).long()
    band = torch.bucketize(speed, torch.tensor(SPEED_EDGES))  # 0: still
    cls = (band - 1) * DIRECTIONS + direction.clamp(0, DIRECTIONS - 1)
    onehot = F.one_hot(torch.where(band > 0, cls, DIRECTIONS * len(SPEED_EDGES)),
                       DIRECTIONS * len(SPEED_EDGES) + 1)[..., :-1].float()  # the still class is left out
    shares = F.avg_pool2d(onehot.permute(0, 3, 1, 2), FLOW_PATCH, stride=FLOW_PATCH // 2)  # (N, C, h', w')
    n, _, h, w = shares.shape
    rows, cols = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    where = place * torch.stack([rows, cols]).expand(n, 2, h, w)
    return torch.cat([shares, where], 1).permute(0, 2, 3, 1)


def frame_scores(desc: torch.Tensor, bank: torch.Tensor) -> np.ndarray:
    return nearest_distance(desc, bank).amax(dim=(1, 2)).numpy()


def speed_scores(flow: np.ndarray) -> np.ndarray:
    speed = torch.from_numpy(np.linalg.norm(flow, axis=-1))[:, None]
    return F.avg_pool2d(speed, FLOW_PATCH, stride=FLOW_PATCH // 2).amax(dim=(1, 2, 3)).numpy()


def micro(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray], offline: bool) -> float:
    from sklearn.metrics import roc_auc_score

    names = sorted(scores)
    s = np.concatenate([minmax(scores[n]) if offline else scores[n] for n in names])
    return round(float(roc_auc_score(np.concatenate([labels[n] for n in names]), s)), 4)


def fused(path: Path, extra: np.ndarray, unit: float) -> float:
    """Micro AUC of the checkpoint's score (`model_raw` of an `ocrgan eval`'s scores.csv: the largest weighted cue
    in its unit) with `extra` / `unit` as one more cue of weight 1. The rows are the test frames in clip order."""
    from sklearn.metrics import roc_auc_score

    with path.open() as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(extra):
        raise SystemExit(f"{path}: {len(rows)} frames, the data's test split has {len(extra)}")
    raw = np.array([float(r["model_raw"]) for r in rows])
    y = np.array([int(r["label"]) for r in rows])
    return round(float(roc_auc_score(y, np.maximum(raw, extra / unit))), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--places", default="0,0.5,1,2", help="weights of the patch's place, comma-separated")
    ap.add_argument("--size", type=int, default=4096, help="patches the memory keeps")
    ap.add_argument("--scores", type=Path, help="scores.csv of an ocrgan eval of a checkpoint on the same data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/motion_memory"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    train, test = flows(args.data, "train"), flows(args.data, "test")
    labels = {n: lab for n, (_, lab) in test.items()}
    print(f"flow of {sum(len(f) for f, _ in train.values())} training and "
          f"{sum(len(f) for f, _ in test.values())} test frames: {time.perf_counter() - t0:.0f} s", flush=True)
    speed = {n: speed_scores(f) for n, (f, _) in test.items()}
    normal = np.concatenate([labels[n] for n in sorted(test)]) == 0
    summary = {"data": args.data, "memory": args.size, "flow_speed": {
        "online": micro(speed, labels, False), "offline": micro(speed, labels, True)}, "places": {}}
    print(f"flow speed: online {summary['flow_speed']['online']}, offline {summary['flow_speed']['offline']}")
    names = sorted(train)
    for place in (float(p) for p in args.places.split(",")):
        t = time.perf_counter()
        desc = {n: describe(f, place) for n, (f, _) in train.items()}
        held = []
        for k in range(FOLDS):
            out = names[k::FOLDS]
            bank = coreset(torch.cat([desc[n].flatten(0, 2) for n in names if n not in out]), args.size)
            held += [frame_scores(desc[n], bank) for n in out]
        unit = float(np.quantile(np.concatenate(held), QUANTILE))
        bank = coreset(torch.cat([desc[n].flatten(0, 2) for n in names]), args.size)
        scores = {n: frame_scores(describe(f, place), bank) for n, (f, _) in test.items()}
        s = np.concatenate([scores[n] for n in sorted(test)])
        row = {"online": micro(scores, labels, False), "offline": micro(scores, labels, True),
               "fold_unit": round(unit, 4),
               "normal_test_quantiles": {q: round(float(np.quantile(s[normal], q)), 4) for q in (0.5, 0.99)},
               "normal_test_beyond_unit": round(float((s[normal] > unit).mean()), 4)}
        if args.scores:
            row["fused_fold_unit"] = fused(args.scores, s, unit)
            row["fused_oracle_unit"] = fused(args.scores, s, float(np.quantile(s[normal], 0.99)))
        summary["places"][place] = row
        print(f"place {place}: {json.dumps(row)} ({time.perf_counter() - t:.0f} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out / 'summary.json'} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
