"""A checkpoint on a camera it was not trained on, calibrated as the service calibrates a camera.

    python benchmarks/new_camera.py --data data/ucsd_ped2 [--checkpoint service/assets/default.safetensors]
        [--out runs/new_camera] [--frames 125,250,600,1000] [--view mirrored|negative|half]

The "new camera" is another view of the dataset's scene: each frame cropped to rows 50-210 and columns 40-280 of
UCSD Ped2's 240x360 (a camera closer by 1.5x) and mirrored, or with `--view negative` turned upside down and in
negative instead (a ground and walkers of a look the checkpoint never saw), or with `--view half` mirrored with only
its far half in negative (a scene like the training footage in part of the frame), written as a frame-folder dataset
under --out. A test frame stays anomalous where its pixel mask (test_pixel_masks.npz) marks a pixel inside the crop, or
where the dataset has no mask for it. On that view it reports, on the test clips:

  checkpoint   the checkpoint's own units, statistics and threshold (a camera with "calibrate": false)
  opening N    a camera's warm-up (service.inference.calibration.Calibration, the service's rule): each cue's
               unit and the score statistics learnt from N frames of the view's normal training footage, one
               opening from the start of each training clip (running on into the next clips), all test frames
               scored with them; the median and worst over the openings
  flow speed   the no-learning baseline of `ocrgan eval` (training/baselines.py) on the same test frames

Frame-level micro AUC, and the share of normal (false-positive rate) and anomalous (recall) test frames flagged at
the checkpoint's threshold; and the pixel AUC of the heatmaps a camera's snapshots would show (as `ocrgan eval`
measures it, against the view's pixel masks) drawn in the checkpoint's units and, for each opening, in the
camera's. Writes summary.json under --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import cv2
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from model import ScorePostprocessor, load_checkpoint
from model.motion import resize_area
from model.scales import cue_values
from model.windows import iter_clip_scores
from service.inference.calibration import Calibration, frame_cues
from training.auc import pixel_auc as pixel_auc_of
from training.baselines import flow_size, flow_speed
from training.discover import find_sequences
from training.evaluate import PIXEL_DOWNSCALE, area_grid
from training.frame_store import FrameStore
from training.labels import read_labels_json

CROP = (50, 210, 40, 280)  # rows, columns of the 240x360 frames the new camera sees
VIEWS = {  # what the new camera makes of the cropped frame (BGR uint8)
    "mirrored": lambda f: f[:, ::-1],  # the scene's own look, the other way round
    # upside down and in negative: the same motion on a ground and walkers of a look the checkpoint never saw (bright
    # pavement, dark grass, light figures), and the perspective the other way (far things at the bottom)
    "negative": lambda f: 255 - f[::-1],
    # the first view with its far half (the top 80 rows of the crop) in negative: a scene that looks like the training
    # footage in one part of the frame and like nothing it saw in the other
    "half": lambda f: np.concatenate([255 - f[:80, ::-1], f[80:, ::-1]]),
}
MASK_VIEWS = {"mirrored": lambda m: m[:, :, ::-1], "negative": lambda m: m[:, ::-1],  # the same of (N, H, W) masks
              "half": lambda m: m[:, :, ::-1]}


def make_view(src: Path, dst: Path, view: str = "mirrored") -> Path:
    """The cropped view of a frame-folder dataset with pixel masks, transformed by VIEWS[view], as a frame-folder
    dataset."""
    r0, r1, c0, c1 = CROP
    masks = np.load(src / "test_pixel_masks.npz")
    labels = read_labels_json(src / "labels.json")
    new = {}
    for split in ("training", "testing"):
        for clip in sorted(p for p in (src / split / "frames").iterdir() if p.is_dir()):
            out = dst / split / "frames" / clip.name
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted(clip.iterdir()):
                image = np.ascontiguousarray(VIEWS[view](cv2.imread(str(f))[r0:r1, c0:c1]))
                cv2.imwrite(str(out / f.name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if split == "testing":
                y = labels[clip.name].astype(bool)
                m = masks[clip.name]
                inside, any_mask = m[:, r0:r1, c0:c1].any((1, 2)), m.any((1, 2))
                new[clip.name] = (y & (inside | ~any_mask)).astype(int).tolist()
    (dst / "labels.json").write_text(json.dumps({"labels": new}))
    return dst


def view_masks(src: Path, view: str, grid: tuple[int, int]) -> np.ndarray:
    """The test clips' pixel masks as the view shows them, on `grid` (a pixel anomalous where half its area is), in
    clip order: (N, rows, cols)."""
    r0, r1, c0, c1 = CROP
    with np.load(src / "test_pixel_masks.npz") as z:
        masks = [np.ascontiguousarray(MASK_VIEWS[view](z[k][:, r0:r1, c0:c1])) for k in sorted(z.files)]
    return np.concatenate([(area_grid(torch.from_numpy(m), grid) >= 0.5).numpy() for m in masks])


def pixel_auc(model, maps: torch.Tensor, masks: np.ndarray, scales: dict[str, float] | None) -> float:
    """Pixel AUC of the heatmaps drawn from the heat cues' maps (N, k, H, W) in the units `scales`."""
    heat = torch.cat([area_grid(model.heatmap(m, scales), masks.shape[1:]) for m in maps.split(256)])
    return round(float(pixel_auc_of(heat.numpy(), masks)), 4)


def rates(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    flags = scores > threshold
    return {"micro_auc": round(float(roc_auc_score(labels, scores)), 4),
            "false_positive_rate": round(float(flags[labels == 0].mean()), 4),
            "recall": round(float(flags[labels == 1].mean()), 4)}


def normalised(model, cues: list[dict], scales: dict[str, float] | None, mean: float, std: float) -> np.ndarray:
    """Each test clip's published (normalised) scores with these units and statistics, smoothed per clip."""
    out = []
    for c in cues:
        post = ScorePostprocessor(model.cfg.score_smoothing, mean, std, float(model.threshold))
        out.append([post(float(r))[1] for r in model.combine(c, scales)])
    return np.concatenate(out)


def opening(model, train_cues: list[dict], start: int, frames: int) -> Calibration:
    """A camera's warm-up over `frames` frames of normal footage, from the start of training clip `start` on."""
    cal = Calibration(frames, model)
    for j in range(len(train_cues)):
        c = train_cues[(start + j) % len(train_cues)]
        for t in range(len(c["app"])):
            if cal.add(frame_cues(c, t)):
                return cal
    raise SystemExit(f"the training footage holds fewer than {frames} frames")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="UCSD Ped2 in the frame-folder layout, with test_pixel_masks.npz")
    ap.add_argument("--checkpoint", default="service/assets/default.safetensors")
    ap.add_argument("--out", default="runs/new_camera")
    ap.add_argument("--frames", default="125,250,600,1000", help="warm-up lengths to try, in frames")
    ap.add_argument("--view", choices=sorted(VIEWS), default="mirrored", help="what the camera makes of the crop")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out / "view", ignore_errors=True)
    view = make_view(Path(args.data), out / "view", args.view)
    model, info = load_checkpoint(args.checkpoint, "cpu")

    maps = []  # the test clips' heat cues' maps, in clip order

    def clip_cues(split: str) -> tuple[list, list[dict]]:
        seqs = find_sequences(view, split)
        store = FrameStore(seqs, info.config, args.workers, desc=split)
        out = []
        for i in range(len(seqs)):
            parts = list(iter_clip_scores(model, store.sequence(i), heatmaps=split == "test"))
            out.append(cue_values(parts))
            maps.extend(p.maps for p in parts if p.maps is not None)
        return seqs, out

    train, train_cues = clip_cues("train")
    test, test_cues = clip_cues("test")
    test_maps = torch.cat(maps)
    masks = view_masks(Path(args.data), args.view, (info.config.hw[0] // PIXEL_DOWNSCALE,
                                                    info.config.hw[1] // PIXEL_DOWNSCALE))
    labels = np.concatenate([s.labels for s in test])
    threshold = float(model.threshold)
    summary = {"checkpoint": args.checkpoint, "crop": CROP, "view": args.view, "test_frames": len(labels),
               "anomalous": int(labels.sum())}
    summary["checkpoint_units"] = {**rates(
        normalised(model, test_cues, None, float(model.score_mean), float(model.score_std)), labels, threshold),
        "pixel_auc": pixel_auc(model, test_maps, masks, None)}
    for n in (int(x) for x in args.frames.split(",")):
        rows, kept = [], 0
        for start in range(len(train)):
            cal = opening(model, train_cues, start, n)
            kept += "mem" in cal.scales
            rows.append({**rates(normalised(model, test_cues, cal.scales, cal.mean, cal.std), labels, threshold),
                         "pixel_auc": pixel_auc(model, test_maps, masks, cal.scales)})
        summary[f"opening_{n}"] = {
            **{f"{k}_median": round(statistics.median(r[k] for r in rows), 4) for k in rows[0]},
            "false_positive_rate_worst": max(r["false_positive_rate"] for r in rows),
            "recall_worst": min(r["recall"] for r in rows), "pixel_auc_worst": min(r["pixel_auc"] for r in rows),
            "openings": len(rows),
            "openings_over_10pct_false_positives": sum(r["false_positive_rate"] > 0.1 for r in rows),
            "openings_keeping_the_memory": kept}  # the others left it out (model.scales.scene_scales)
    size = flow_size(info.config.hw)
    speed = [flow_speed(np.stack([resize_area(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), size) for f in s.frames]))
             for s in test]
    summary["flow_speed"] = {"micro_auc": round(float(roc_auc_score(labels, torch.cat(speed).numpy())), 4)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
