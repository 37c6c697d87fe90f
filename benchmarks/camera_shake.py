"""A camera that sways in gusts of wind, with the motion band's flow raw and less the camera's own motion.

    python benchmarks/camera_shake.py --data data/ucsd_ped2 [--checkpoint service/assets/default.safetensors]
        [--out runs/camera_shake] [--amplitude 3] [--seed 0] [--training-sways]

The camera is the new view of benchmarks/new_camera.py (UCSD Ped2 cropped and mirrored). Its training footage is
still; in its test clips the camera sways during gusts, alternate spans of GUST frames (each clip's first gust
at a random offset): a translation of two sines per axis (periods of 8-20 and 3-7 frames, --amplitude and half of
it, in pixels of the 240x360 frame) and a rotation of up to 0.04 degrees per pixel of amplitude, applied to the
frame before the view is cropped from it, so no border shows. Labels are the view's. With --training-sways the
training footage sways in gusts too (a camera always on a swaying pole), the warm-up is read on it, and
--out/swaying is a whole dataset that models can be trained on and evaluated with `ocrgan train` and `ocrgan eval`.

For the checkpoint's weights given the flow raw (`steady` false) and less the camera's own motion (`steady` true,
model.motion.steady_flow), whatever the checkpoint itself says, a camera warms up on the first WARM_UP frames of the
training footage (service.inference.calibration.Calibration, the service's rule) and scores the test clips, still
and swaying. Reported per footage: frame-level micro AUC of the published scores, and the share of normal
(false-positive rate) and anomalous (recall) frames flagged at the checkpoint's threshold, in the gusts' spans and
between them (the still footage's spans are the same frames, unmoved); beside them the no-learning flow speed of
`ocrgan eval`, raw and steady, on the same frames.
Writes summary.json under --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch
from new_camera import CROP, make_view, normalised, opening
from sklearn.metrics import roc_auc_score

from model import load_checkpoint
from model.motion import resize_area
from model.scales import cue_values
from model.windows import iter_clip_scores
from training.baselines import flow_size, flow_speeds
from training.discover import find_sequences
from training.frame_store import FrameStore

GUST = 50  # frames of a gust, and of the calm between gusts
WARM_UP = 600  # frames: the service's default OCRGAN_CALIBRATION_FRAMES


def sway(n: int, amplitude: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of a clip of `n`: whether a gust blows, and the 2x3 affine warp of the frame (identity between
    gusts)."""
    t = np.arange(n)
    gust = ((t + rng.integers(0, 2 * GUST)) // GUST) % 2 == 1

    def axis() -> np.ndarray:
        slow, fast = rng.uniform(8, 20), rng.uniform(3, 7)
        return amplitude * (np.sin(2 * np.pi * t / slow + rng.uniform(0, 2 * np.pi))
                            + 0.5 * np.sin(2 * np.pi * t / fast + rng.uniform(0, 2 * np.pi)))

    tx, ty = axis() * gust, axis() * gust
    degrees = 0.04 * amplitude * np.sin(2 * np.pi * t / rng.uniform(10, 25)) * gust
    warps = []
    for a, b, r in zip(tx, ty, degrees, strict=True):
        m = cv2.getRotationMatrix2D((180.0, 120.0), float(r), 1.0)
        m[:, 2] += (a, b)
        warps.append(m)
    return gust, np.stack(warps)


def make_swaying(src: Path, still_view: Path, dst: Path, amplitude: float, seed: int,
                 splits: tuple[str, ...] = ("testing",)) -> tuple[Path, np.ndarray]:
    """The view's clips of `splits` seen by the swaying camera, as a frame-folder dataset (labels.json of the still
    view), and the gust flag of every test frame in clip order."""
    r0, r1, c0, c1 = CROP
    rng = np.random.default_rng(seed)
    gusts = []
    clips = [(s, c) for s in splits for c in sorted(p for p in (src / s / "frames").iterdir() if p.is_dir())]
    for split, clip in clips:
        files = sorted(clip.iterdir())
        gust, warps = sway(len(files), amplitude, rng)
        out = dst / split / "frames" / clip.name
        out.mkdir(parents=True, exist_ok=True)
        for f, m in zip(files, warps, strict=True):
            img = cv2.imread(str(f))
            moved = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR)
            cv2.imwrite(str(out / f.name), moved[r0:r1, c0:c1][:, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        if split == "testing":
            gusts.append(gust)
    shutil.copy(still_view / "labels.json", dst / "labels.json")
    return dst, np.concatenate(gusts)


def rates(scores: np.ndarray, labels: np.ndarray, gust: np.ndarray, threshold: float) -> dict[str, float]:
    flags = scores > threshold
    out = {"micro_auc": round(float(roc_auc_score(labels, scores)), 4)}
    for name, part in (("gusts", gust), ("calm", ~gust)):
        if part.any():
            out[f"false_positive_rate_{name}"] = round(float(flags[part & (labels == 0)].mean()), 4)
            out[f"recall_{name}"] = round(float(flags[part & (labels == 1)].mean()), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="UCSD Ped2 in the frame-folder layout, with test_pixel_masks.npz")
    ap.add_argument("--checkpoint", default="service/assets/default.safetensors")
    ap.add_argument("--out", default="runs/camera_shake")
    ap.add_argument("--amplitude", type=float, default=3.0, help="pixels of the 240x360 frame")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--training-sways", action="store_true",
                    help="the training footage sways too (the warm-up is read on it): a camera always on a swaying "
                         "pole; --out/swaying is then a whole dataset to train on")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    still = make_view(Path(args.data), out / "view")
    splits = ("testing", "training") if args.training_sways else ("testing",)  # the test's sway is the same
    swaying, gust = make_swaying(Path(args.data), still, out / "swaying", args.amplitude, args.seed, splits)
    model, info = load_checkpoint(args.checkpoint, "cpu")
    threshold = float(model.threshold)
    labels = np.concatenate([s.labels for s in find_sequences(still, "test")])
    footage = {"still": still, "swaying": swaying}  # the gust spans of the still footage are the same frames, still
    summary = {"checkpoint": args.checkpoint, "amplitude": args.amplitude, "gust_frames": GUST, "warm_up": WARM_UP,
               "training_sways": args.training_sways,
               "test_frames": len(labels), "in_gusts": int(gust.sum()), "anomalous": int(labels.sum())}
    for steady in (False, True):
        cfg = dataclasses.replace(info.config, steady=steady)

        def clip_cues(data: Path, split: str, cfg=cfg) -> list[dict]:
            seqs = find_sequences(data, split)
            store = FrameStore(seqs, cfg, args.workers, desc=split)
            return [cue_values(list(iter_clip_scores(model, store.sequence(i)))) for i in range(len(seqs))]

        cal = opening(model, clip_cues(swaying if args.training_sways else still, "train"), 0, WARM_UP)
        for name, data in footage.items():
            scores = normalised(model, clip_cues(data, "test"), cal.scales, cal.mean, cal.std)
            summary[f"model_{'steady' if steady else 'raw'}_flow_{name}"] = rates(scores, labels, gust, threshold)
    size = flow_size(info.config.hw)
    for name, data in footage.items():
        speeds: dict[str, list[torch.Tensor]] = {}
        for s in find_sequences(data, "test"):
            grey = np.stack([resize_area(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), size) for f in s.frames])
            for k, v in flow_speeds(grey).items():
                speeds.setdefault(k, []).append(v)
        for k, v in speeds.items():
            score = torch.cat(v).numpy()
            summary[f"{k}_{name}"] = {"micro_auc": round(float(roc_auc_score(labels, score)), 4),
                                      "micro_auc_gusts": round(float(roc_auc_score(labels[gust], score[gust])), 4)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
