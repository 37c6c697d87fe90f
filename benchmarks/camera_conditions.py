"""A camera that sways in the wind, whose light changes, or that sees rain or snow, with and without the
preprocessing made for it.

    python benchmarks/camera_conditions.py --data data/ucsd_ped2 --condition sway|light|rain|snow|grain
        [--checkpoint service/assets/default.safetensors] [--out runs/camera_<condition>] [--amplitude 3]
        [--gain 1.5] [--streaks 200] [--flakes 150] [--grain 8] [--seed 0] [--view mirrored|negative]

The camera is the new view of benchmarks/new_camera.py (UCSD Ped2 cropped and mirrored, or with --view negative
upside down and in negative). Its training footage is as it was; in its test clips the condition holds in
alternate spans of SPAN frames (each clip's first at a random offset), applied to the frame before the view is
cropped from it, so no border shows. Labels are the view's.

  sway   the camera moves in gusts of wind: a translation of two sines per axis (periods of 8-20 and 3-7 frames,
         --amplitude and half of it, in pixels of the 240x360 frame) and a rotation of up to 0.04 degrees per
         pixel of amplitude. Compared: the checkpoint's weights given the motion band's flow raw (`steady` false)
         and less the camera's own motion (`steady` true, model.motion.Steadier).
  light  the light steps to --gain times its level and back (lights switched on, the sun out of a cloud, an
         auto-exposure), clipped to 255. Compared: each frame's appearance as it comes (`exposure` none) and set
         to the checkpoint's level and contrast (`exposure`, model.preprocess.appearance; the recipe's where the
         checkpoint has none).
  rain   showers: --streaks thin bright streaks in every frame, each at a new place (`rain`). Compared: the frames
         as they come (`drops` false) and with the thin bright features new in a frame taken out (`drops` true,
         model.preprocess.DropFilter).
  snow   snowfall: --flakes flakes falling a few pixels a frame, each followed from frame to frame (`snow`);
         compared as rain is.
  grain  a camera's noise in poor light: Gaussian noise of --grain grey levels, new in every pixel of every frame
         (`grain`). Compared: the motion band's flow everywhere (`gated` false) and only where the frame changed
         beyond its noise (`gated` true, model.motion.changed).

For each, whatever the checkpoint itself says, a camera warms up on the first WARM_UP frames of the training
footage (service.inference.calibration.Calibration, the service's rule) and scores the test clips as they were and
under the condition. Reported per footage: frame-level micro AUC of the published scores, and the share of normal
(false-positive rate) and anomalous (recall) frames flagged at the checkpoint's threshold, in the condition's spans
and between them (footage as it was: the same frames, unchanged); beside them the no-learning flow speed of `ocrgan
eval`, raw and steady, and the frame difference, on the same frames. Writes summary.json under --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch
from new_camera import CROP, VIEWS, make_view, normalised, opening
from sklearn.metrics import roc_auc_score

from model import load_checkpoint
from model.motion import resize_area
from model.scales import cue_values
from model.windows import iter_clip_scores
from training.baselines import flow_size, flow_speeds, frame_difference
from training.config import RECIPE
from training.discover import find_sequences
from training.frame_store import FrameStore

SPAN = 50  # frames the condition holds, and frames between
WARM_UP = 600  # frames: the service's default OCRGAN_CALIBRATION_FRAMES


def spans(n: int, rng: np.random.Generator) -> np.ndarray:
    """Whether the condition holds at each frame of a clip of `n`."""
    return ((np.arange(n) + rng.integers(0, 2 * SPAN)) // SPAN) % 2 == 1


def sway(on: np.ndarray, amplitude: float, rng: np.random.Generator) -> list:
    """Per frame, the frame as the swaying camera sees it (identity outside the spans)."""
    t = np.arange(len(on))

    def axis() -> np.ndarray:
        slow, fast = rng.uniform(8, 20), rng.uniform(3, 7)
        return amplitude * (np.sin(2 * np.pi * t / slow + rng.uniform(0, 2 * np.pi))
                            + 0.5 * np.sin(2 * np.pi * t / fast + rng.uniform(0, 2 * np.pi)))

    tx, ty = axis() * on, axis() * on
    degrees = 0.04 * amplitude * np.sin(2 * np.pi * t / rng.uniform(10, 25)) * on

    def warp(a: float, b: float, r: float):
        def apply(img: np.ndarray) -> np.ndarray:
            h, w = img.shape[:2]
            m = cv2.getRotationMatrix2D((w / 2, h / 2), float(r), 1.0)
            m[:, 2] += (a, b)
            return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR)
        return apply

    return [warp(a, b, r) for a, b, r in zip(tx, ty, degrees, strict=True)]


def light(on: np.ndarray, gain: float) -> list:
    """Per frame, the frame in the changed light (as it was outside the spans)."""
    def lit(img: np.ndarray) -> np.ndarray:
        return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return [lit if o else (lambda img: img) for o in on]


def rain(on: np.ndarray, streaks: int, rng: np.random.Generator) -> list:
    """Per frame, the frame in a shower (as it was outside the spans): `streaks` bright streaks 1 pixel wide, 8-20
    pixels long, falling within 15 degrees of the vertical, each at a new place in every frame (a drop crosses the
    view within one frame period), 30-70 grey levels brighter than what is behind them, clipped to 255."""
    def shower(seed: int):
        def apply(img: np.ndarray) -> np.ndarray:
            r = np.random.default_rng(seed)
            h, w = img.shape[:2]
            drops = np.zeros((h, w), np.float32)
            angle = np.deg2rad(r.uniform(-15, 15, streaks))
            length = r.uniform(8, 20, streaks)
            x0, y0 = r.uniform(0, w, streaks), r.uniform(0, h, streaks)
            for x, y, a, n, g in zip(x0, y0, angle, length, r.uniform(30, 70, streaks), strict=True):
                end = (int(x + n * np.sin(a)), int(y + n * np.cos(a)))
                cv2.line(drops, (int(x), int(y)), end, float(g), 1, cv2.LINE_AA)
            return np.clip(img.astype(np.float32) + drops[..., None], 0, 255).astype(np.uint8)
        return apply
    seeds = rng.integers(0, 2**31, len(on))
    return [shower(int(s)) if o else (lambda img: img) for o, s in zip(on, seeds, strict=True)]


def snow(on: np.ndarray, flakes: int, rng: np.random.Generator) -> list:
    """Per frame, the frame in snowfall (as it was outside the spans): `flakes` bright flakes 2-5 pixels across,
    40-80 grey levels brighter than what is behind them, falling 1.5-4 pixels a frame and drifting up to 1 sideways,
    each followed from frame to frame (it wraps round the frame), clipped to 255."""
    x0, y0 = rng.uniform(0, 1, flakes), rng.uniform(0, 1, flakes)
    vx, vy = rng.uniform(-1, 1, flakes), rng.uniform(1.5, 4, flakes)
    radius, glow = rng.uniform(1, 2.5, flakes), rng.uniform(40, 80, flakes)

    def fall(t: int):
        def apply(img: np.ndarray) -> np.ndarray:
            h, w = img.shape[:2]
            layer = np.zeros((h, w), np.float32)
            for x, y, r, g in zip((x0 * w + vx * t) % w, (y0 * h + vy * t) % h, radius, glow, strict=True):
                cv2.circle(layer, (int(x), int(y)), max(1, round(r)), float(g), -1, cv2.LINE_AA)
            return np.clip(img.astype(np.float32) + layer[..., None], 0, 255).astype(np.uint8)
        return apply
    return [fall(t) if o else (lambda img: img) for t, o in enumerate(on)]


def grain(on: np.ndarray, level: float, rng: np.random.Generator) -> list:
    """Per frame, the frame with a camera's noise (as it was outside the spans): Gaussian, `level` grey levels,
    new in every pixel of every frame (the same in the three colour channels: a grey camera's), clipped to 255."""
    def noisy(seed: int):
        def apply(img: np.ndarray) -> np.ndarray:
            noise = np.random.default_rng(seed).normal(0, level, img.shape[:2]).astype(np.float32)
            return np.clip(img.astype(np.float32) + noise[..., None], 0, 255).astype(np.uint8)
        return apply
    seeds = rng.integers(0, 2**31, len(on))
    return [noisy(int(s)) if o else (lambda img: img) for o, s in zip(on, seeds, strict=True)]


def make_conditioned(src: Path, still_view: Path, dst: Path, condition, seed: int,
                     view: str = "mirrored") -> tuple[Path, np.ndarray]:
    """The view's test clips under `condition` (spans -> per-frame transforms), as a frame-folder dataset
    (labels.json of the view as it was), and whether the condition holds at every test frame, in clip order."""
    r0, r1, c0, c1 = CROP
    rng = np.random.default_rng(seed)
    held = []
    for clip in sorted(p for p in (src / "testing" / "frames").iterdir() if p.is_dir()):
        files = sorted(clip.iterdir())
        on = spans(len(files), rng)
        out = dst / "testing" / "frames" / clip.name
        out.mkdir(parents=True, exist_ok=True)
        for f, change in zip(files, condition(on, rng), strict=True):
            image = np.ascontiguousarray(VIEWS[view](change(cv2.imread(str(f)))[r0:r1, c0:c1]))
            cv2.imwrite(str(out / f.name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        held.append(on)
    shutil.copy(still_view / "labels.json", dst / "labels.json")
    return dst, np.concatenate(held)


def rates(scores: np.ndarray, labels: np.ndarray, on: np.ndarray, threshold: float) -> dict[str, float]:
    flags = scores > threshold
    out = {"micro_auc": round(float(roc_auc_score(labels, scores)), 4)}
    for name, part in (("spans", on), ("between", ~on)):
        out[f"false_positive_rate_{name}"] = round(float(flags[part & (labels == 0)].mean()), 4)
        out[f"recall_{name}"] = round(float(flags[part & (labels == 1)].mean()), 4)
    return out


def baselines(data: Path, labels: np.ndarray, on: np.ndarray, hw: tuple[int, int], patch: int) -> dict[str, dict]:
    """The no-learning detectors of `ocrgan eval` on a dataset's test clips."""
    scores: dict[str, list[torch.Tensor]] = {}
    for s in find_sequences(data, "test"):
        grey = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in s.frames]
        for k, v in flow_speeds(np.stack([resize_area(g, flow_size(hw)) for g in grey])).items():
            scores.setdefault(k, []).append(v)
        scores.setdefault("frame_difference", []).append(
            frame_difference(np.stack([resize_area(g, hw) for g in grey]), patch))
    out = {}
    for k, v in scores.items():
        score = torch.cat(v).numpy()
        out[k] = {"micro_auc": round(float(roc_auc_score(labels, score)), 4),
                  "micro_auc_spans": round(float(roc_auc_score(labels[on], score[on])), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="UCSD Ped2 in the frame-folder layout, with test_pixel_masks.npz")
    ap.add_argument("--condition", required=True, choices=("sway", "light", "rain", "snow", "grain"))
    ap.add_argument("--checkpoint", default="service/assets/default.safetensors")
    ap.add_argument("--out", help="default runs/camera_<condition>")
    ap.add_argument("--amplitude", type=float, default=3.0, help="sway: pixels of the 240x360 frame")
    ap.add_argument("--gain", type=float, default=1.5, help="light: the level it steps to, times the old")
    ap.add_argument("--streaks", type=int, default=200, help="rain: drops in each frame of a shower")
    ap.add_argument("--flakes", type=int, default=150, help="snow: flakes in the air")
    ap.add_argument("--grain", type=float, default=8.0, help="grain: grey levels of noise")
    ap.add_argument("--view", choices=sorted(VIEWS), default="mirrored", help="the new camera's view (new_camera.py)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out or f"runs/camera_{args.condition}")
    shutil.rmtree(out, ignore_errors=True)
    model, info = load_checkpoint(args.checkpoint, "cpu")
    if args.condition == "sway":
        condition = lambda on, rng: sway(on, args.amplitude, rng)  # noqa: E731
        variants = {"raw_flow": {"steady": False}, "steady_flow": {"steady": True}}
    elif args.condition in ("rain", "snow"):
        condition = {"rain": lambda on, rng: rain(on, args.streaks, rng),
                     "snow": lambda on, rng: snow(on, args.flakes, rng)}[args.condition]
        variants = {"as_it_comes": {"drops": False}, "drops": {"drops": True}}
    elif args.condition == "grain":
        condition = lambda on, rng: grain(on, args.grain, rng)  # noqa: E731
        variants = {"all_flow": {"gated": False}, "gated_flow": {"gated": True}}
    else:
        condition = lambda on, rng: light(on, args.gain)  # noqa: E731
        variants = {"as_it_comes": {"exposure": None},
                    "exposure": {"exposure": info.config.exposure or tuple(RECIPE["exposure"])}}
    plain = make_view(Path(args.data), out / "view", args.view)
    changed, on = make_conditioned(Path(args.data), plain, out / args.condition, condition, args.seed, args.view)
    threshold = float(model.threshold)
    labels = np.concatenate([s.labels for s in find_sequences(plain, "test")])
    footage = {"as_it_was": plain, args.condition: changed}
    summary = {"checkpoint": args.checkpoint, "condition": args.condition, "view": args.view, "span_frames": SPAN,
               "warm_up": WARM_UP,
               **{"sway": {"amplitude": args.amplitude}, "light": {"gain": args.gain},
                  "rain": {"streaks": args.streaks}, "snow": {"flakes": args.flakes},
                  "grain": {"grain": args.grain}}[args.condition],
               "test_frames": len(labels), "in_spans": int(on.sum()), "anomalous": int(labels.sum())}
    for variant, change in variants.items():
        cfg = info.config.replace(**change)

        def clip_cues(data: Path, split: str, cfg=cfg) -> list[dict]:
            seqs = find_sequences(data, split)
            store = FrameStore(seqs, cfg, args.workers, desc=split)
            return [cue_values(list(iter_clip_scores(model, store.sequence(i)))) for i in range(len(seqs))]

        cal = opening(model, clip_cues(plain, "train"), 0, WARM_UP)
        for name, data in footage.items():
            scores = normalised(model, clip_cues(data, "test"), cal.scales, cal.mean, cal.std)
            summary[f"model_{variant}_{name}"] = rates(scores, labels, on, threshold)
    for name, data in footage.items():
        for k, v in baselines(data, labels, on, info.config.hw, info.config.score_patch).items():
            summary[f"{k}_{name}"] = v
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
