"""A camera whose scene drifts after its warm-up, with and without learning its level again.

    python benchmarks/scene_drift.py --data data/ucsd_ped2 [--checkpoint service/assets/default.safetensors]
        [--out runs/scene_drift] [--noise 8] [--passes 3] [--recalibration 0,1200,6000]

The camera is the new view of benchmarks/new_camera.py (UCSD Ped2 cropped and mirrored). It warms up on the first
600 frames of the view's normal training footage (OCRGAN_CALIBRATION_FRAMES), then sees that footage --passes times
in all and then the test clips, while sensor noise grows as it does when the light fails: Gaussian noise whose
standard deviation rises linearly from 0 after the warm-up to --noise grey levels at the start of the last pass, and
stays there through the last pass and the test clips (each pass with noise of its own). Every frame is scored by
the checkpoint and published by the service's own per-camera rule (service.cameras.scores.StreamScoring:
calibration, recalibration from the frames it did not flag, events), once for each --recalibration value
(OCRGAN_RECALIBRATION_FRAMES; 0 = the warm-up's statistics for good). On the test clips it reports the share of
normal (false-positive rate) and anomalous (recall) frames flagged, the frame-level micro AUC of the published
scores, the anomaly events opened and the recalibrations so far; the same footage without the noise shows what the
drift costs. Writes summary.json under --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch
from new_camera import make_view
from sklearn.metrics import roc_auc_score

from model import WindowScores, load_checkpoint
from model.scales import cue_values
from model.windows import iter_clip_scores
from service.cameras.scores import StreamScoring
from training.discover import find_sequences
from training.frame_store import FrameStore

WARM_UP = 600  # frames: the service's default OCRGAN_CALIBRATION_FRAMES


def add_noise(view: Path, dst: Path, sigma: float, passes: int, seed: int = 0) -> Path:
    """The view's training footage `passes` times (clip folders p<k>_<clip>, in viewing order) and its test clips,
    with noise: none during the warm-up, then rising linearly to `sigma` grey levels at the start of the last pass,
    `sigma` from there on."""
    rng = np.random.default_rng(seed)
    clips = sorted((view / "training" / "frames").iterdir())
    total = sum(len(list(c.iterdir())) for c in clips)
    ramp = max(1, (passes - 1) * total - WARM_UP)

    def write(src: Path, out: Path, level) -> None:
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            img, s = cv2.imread(str(f)).astype(np.float32), level()
            noisy = img + rng.normal(0, s, img.shape[:2])[..., None] if s > 0 else img
            cv2.imwrite(str(out / f.name), np.clip(noisy, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])

    n = 0

    def rising() -> float:
        nonlocal n
        n += 1
        return sigma * min(1.0, max(0, n - 1 - WARM_UP) / ramp)

    for k in range(passes):
        for clip in clips:
            write(clip, dst / "training" / "frames" / f"p{k}_{clip.name}", rising)
    for clip in sorted((view / "testing" / "frames").iterdir()):
        write(clip, dst / "testing" / "frames" / clip.name, lambda: sigma)
    shutil.copy(view / "labels.json", dst / "labels.json")
    return dst


class _Host:
    def __init__(self, model) -> None:
        self.model = model


def publish(model, cues: dict, recalibration: int, n_train: int) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """The camera's published normalised scores and flags for the frames of `cues` in order, the frames at which
    anomaly events started, and its recalibrations before frame `n_train`."""
    scoring = StreamScoring("cam", "r", _Host(model), True, WARM_UP, 3, 10, recalibration)
    normalised, flags, starts, before = [], [], [], 0
    for i in range(len(cues["app"])):
        before = scoring.recalibrations if i == n_train else before
        one = {k: None if v is None else v[i:i + 1] for k, v in cues.items()}
        ws = WindowScores([i], model.combine(one, model.scales()), None, torch.zeros(1), one["feat"], one["app"],
                          one["motion"], one["speed"], one["dir"], one["mem"], one["grey"])
        for m in scoring.consume(ws, [i / 10]):
            if m.type == "score":
                normalised.append(m.normalised)
                flags.append(m.anomaly)
            elif m.event == "start":
                starts.append(m.frame_index)
    return np.array(normalised), np.array(flags), starts, before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="UCSD Ped2 in the frame-folder layout, with test_pixel_masks.npz")
    ap.add_argument("--checkpoint", default="service/assets/default.safetensors")
    ap.add_argument("--out", default="runs/scene_drift")
    ap.add_argument("--noise", type=float, default=8.0, help="grey levels of noise from the first test frame on")
    ap.add_argument("--passes", type=int, default=3, help="times the normal training footage is played")
    ap.add_argument("--recalibration", default="0,1200,6000", help="OCRGAN_RECALIBRATION_FRAMES values to compare")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    view = make_view(Path(args.data), out / "view")
    model, info = load_checkpoint(args.checkpoint, "cpu")
    summary = {"checkpoint": args.checkpoint, "warm_up": WARM_UP, "noise": args.noise, "passes": args.passes}

    def clip_cues(data: Path, split: str) -> tuple[list[dict], list[np.ndarray]]:
        seqs = find_sequences(data, split)
        store = FrameStore(seqs, info.config, args.workers, desc=f"{data.name} {split}")
        return ([cue_values(list(iter_clip_scores(model, store.sequence(i)))) for i in range(len(seqs))],
                [np.zeros(s.length, int) if split == "train" else np.asarray(s.labels) for s in seqs])

    test_clean = clip_cues(view, "test")
    train_clean = clip_cues(view, "train")
    drift = add_noise(view, out / "drift", args.noise, args.passes)
    conditions = {"clean": (train_clean[0] * args.passes, test_clean),
                  "drift": (clip_cues(drift, "train")[0], clip_cues(drift, "test"))}
    for name, (train_cues, (test_cues, test_labels)) in conditions.items():
        cues = train_cues + test_cues
        n_train = sum(len(c["app"]) for c in train_cues)
        timeline = {k: None if cues[0][k] is None else torch.cat([c[k] for c in cues]) for k in cues[0]}
        y = np.concatenate(test_labels)
        for r in (int(x) for x in args.recalibration.split(",")):
            norm, flags, starts, before = publish(model, timeline, r, n_train)
            norm, flags = norm[n_train:], flags[n_train:]
            summary[f"{name}_recalibration_{r}"] = {
                "false_positive_rate": round(float(flags[y == 0].mean()), 4),
                "recall": round(float(flags[y == 1].mean()), 4),
                "micro_auc": round(float(roc_auc_score(y, norm)), 4),
                "events_in_test": sum(s >= n_train for s in starts), "recalibrations_before_test": before}
            print(name, r, summary[f"{name}_recalibration_{r}"], flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
