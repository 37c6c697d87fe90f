"""`ocrgan eval`: frame-level AUC under both protocols, the no-learning baselines on the same frames,
pixel-level AUC where masks exist, ROC and timeline pictures, and every frame's scores (scores.csv)."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from model import iter_clip_scores, load_checkpoint
from model.scales import cue_values
from model.scoring import CUES
from model.windows import postprocess
from training.auc import DUMMY_RULE, auc_report, minmax, protocols, roc_points, threshold_report
from training.auc import pixel_auc as pixel_auc_of
from training.baselines import baseline_scores, flow_size
from training.discover import find_sequences
from training.frame_store import FrameStore, within_budget
from training.plots import plot_roc, plot_timeline
from training.sequences import DataError

log = logging.getLogger(__name__)
PIXEL_DOWNSCALE = 4  # pixel AUC on a grid 4x coarser than the model's input, to bound memory


def first_frames_rule(num_frames: int, stride: int) -> str:
    return (f"every frame is scored exactly once, from the {num_frames}-frame window scored next after it arrives "
            f"(a window every {stride} frames publishes its last {stride} positions); the model predicts each "
            "frame from the frames before it only. Before a clip's first frame the first frame is repeated, so the "
            f"first {num_frames - 1} frames are scored like the rest, with a context that repeats frame 0: "
            "none is excluded and none uses a later frame")


def mean_training_frame(data: str, cfg, workers: int) -> torch.Tensor | None:
    try:
        train = find_sequences(data, "train")
    except DataError as e:
        log.warning("no training split for the mean-frame baseline: %s", e)
        return None
    plain = cfg.replace(motion=False, drops=False)
    return FrameStore(within_budget(train, plain), plain, workers, desc="decoding train (baseline)").mean_frame()


def baseline_flow_store(store: FrameStore, seqs, cfg, workers: int) -> FrameStore:
    """The test frames as the flow-speed baseline sees them (luma, FLOW_HEIGHT high): the store's own flow
    frames when they are that size, else decoded once more."""
    size = flow_size(cfg.hw)
    if store.big is not None and store.big.shape[1:3] == size and store.big.ndim == 3:
        return store
    bcfg = cfg.replace(isize=size, nc=1, motion=False, drops=False, depth=0, skip_cut=0)
    return FrameStore(seqs, bcfg, workers, desc="decoding test (flow speed)")


def write_scores(path: Path, labels: dict[str, np.ndarray], raw: dict[str, np.ndarray],
                 online: dict[str, np.ndarray], normalised: dict[str, np.ndarray], threshold: float,
                 baselines: dict[str, dict[str, np.ndarray]], cues: dict[str, dict[str, np.ndarray]]) -> None:
    """One row per test frame: its label; the model's raw, smoothed (online) and normalised scores, its
    anomaly flag and its per-clip min-max (offline) score; each of the model's cues in its unit (`cue_*`, before
    weighting); each baseline's raw and offline score."""
    names, cue_names = sorted(baselines), [k for k in CUES if k in cues]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip", "frame", "label", "model_raw", "model_online", "model_normalised", "model_anomaly",
                    "model_offline", *[f"cue_{k}" for k in cue_names],
                    *[f"{n}_{k}" for n in names for k in ("raw", "offline")]])
        for clip in sorted(labels):
            cols = [raw[clip], online[clip], normalised[clip], normalised[clip] > threshold, minmax(raw[clip])]
            cols += [cues[k][clip] for k in cue_names]
            for n in names:
                cols += [baselines[n][clip], minmax(baselines[n][clip])]
            for k, y in enumerate(labels[clip]):
                w.writerow([clip, k, int(y), *[int(c[k]) if c.dtype == bool else f"{c[k]:.6g}" for c in cols]])


def load_masks(data: str) -> dict[str, np.ndarray] | None:
    p = Path(data) / "test_pixel_masks.npz"
    if not p.is_file():
        return None
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def area_grid(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) maps or masks -> (N, rows, cols): each cell's mean (the grid the pixel AUC is measured on)."""
    return F.interpolate(t.float()[:, None], size=size, mode="area")[:, 0]


def evaluate(checkpoint: str | Path, data: str, out_dir: str | Path, device: str = "cpu", stride: int | None = None,
             sigma: float = 3.0, workers: int = 2, batch: int = 8, pixel: bool = True) -> dict:
    t0 = time.time()
    out = Path(out_dir)
    model, info = load_checkpoint(checkpoint, device)
    cfg = info.config
    stride = stride or cfg.stride
    seqs = find_sequences(data, "test")
    (out / "timelines").mkdir(parents=True, exist_ok=True)  # once the checkpoint and the data are known good
    store = FrameStore(seqs, cfg, workers, desc="decoding test")
    masks = load_masks(data) if pixel else None
    grid = (cfg.hw[0] // PIXEL_DOWNSCALE, cfg.hw[1] // PIXEL_DOWNSCALE)
    raw, online, normalised, labels = {}, {}, {}, {}
    cues: dict[str, dict[str, np.ndarray]] = {}  # cue -> clip -> per-frame value in the cue's unit
    maps, mask_grid = [], []
    scales = model.scales()
    t_score = time.time()
    for i, seq in enumerate(tqdm(store.sequences, desc="scoring", unit="clip")):
        if seq.labels is None or len(seq.labels) != seq.length:
            raise DataError(f"{seq.source()}: {0 if seq.labels is None else len(seq.labels)} labels "
                            f"for {seq.length} decoded frames")
        frames = store.sequence(i)
        want_maps = masks is not None and seq.name in masks
        parts = list(iter_clip_scores(model, frames, stride, batch, heatmaps=want_maps))
        r = torch.cat([p.raw for p in parts])
        post = postprocess(model, r)
        raw[seq.name], online[seq.name] = r.numpy(), post.score.numpy()
        for k, v in cue_values(parts).items():
            if v is not None:
                cues.setdefault(k, {})[seq.name] = (v / scales[k]).numpy()
        normalised[seq.name], labels[seq.name] = post.normalised.numpy(), seq.labels.astype(np.uint8)
        if want_maps:
            maps.append(area_grid(model.heatmap(torch.cat([p.maps for p in parts])), grid).numpy())
            mask_grid.append((area_grid(torch.from_numpy(masks[seq.name]), grid) >= 0.5).numpy())
    score_seconds = time.time() - t_score
    n_frames = int(sum(len(v) for v in labels.values()))
    report = protocols(raw, online, labels, sigma)
    cue_report = {}  # each cue alone, in its unit: the score's parts measured on the same frames
    for k, c in cues.items():
        both = protocols(c, c, labels, sigma)
        cue_report[k] = {"weight": model.weights()[k],
                         **{p: {m: both[p][m] for m in ("micro_auc", "macro_auc")} for p in ("online", "offline")}}
    threshold = float(model.threshold)

    mean_frame = mean_training_frame(data, cfg, workers)
    flow_store = baseline_flow_store(store, seqs, cfg, workers)
    baselines = {}
    base_scores: dict[str, dict[str, np.ndarray]] = {}
    for i, seq in enumerate(tqdm(store.sequences, desc="baselines", unit="clip")):
        flow_frames = flow_store.raw_sequence(i) if flow_store is not store else store.big_sequence(i)
        for name, s in baseline_scores(store.raw_sequence(i), flow_frames, mean_frame, cfg.score_patch).items():
            base_scores.setdefault(name, {})[seq.name] = s.numpy()
    for name, sc in base_scores.items():
        b = protocols(sc, sc, labels, sigma)
        baselines[name] = {k: {m: v[m] for m in ("micro_auc", "macro_auc", "macro_auc_dummy")} for k, v in b.items()}

    metrics = {
        "checkpoint": {"path": str(checkpoint), "sha256": info.sha256, "config": cfg.to_dict(),
                       "training": {k: info.training.get(k) for k in ("data", "epochs", "steps", "wall_seconds",
                                                                          "best_epoch", "selection_score",
                                                                          "score_weights", "validation")}},
        "data": str(data),
        "frames": n_frames,
        "clips": len(labels),
        "anomalous_frames": int(sum(int(v.sum()) for v in labels.values())),
        "protocol": {
            "first_frames": first_frames_rule(cfg.num_frames, stride),
            "online": (f"scores as the service publishes them: causal windows, stride {stride}, causal EMA "
                       f"smoothing {cfg.score_smoothing}, normalised with statistics fitted on validation clips "
                       "carved from the training split"),
            "offline": "per-clip min-max normalisation of raw scores (uses the whole clip, as the literature does)",
            "offline_gaussian": f"offline plus centred Gaussian smoothing, sigma {sigma} frames",
            "macro": "macro_auc is the mean AUC of the clips that hold both classes; macro_auc_dummy averages "
                     "every clip, " + DUMMY_RULE,
            "baselines": "no learning, on the model's frames (uint8, area-resized to the working size): "
                         "flow_speed is OpenCV DIS (fast preset, finest scale 0) between consecutive frames resized "
                         "to 128 px high, its magnitude averaged over 16x16 patches (stride 8), the largest per "
                         "frame; flow_speed_steady the same of the flow less the camera's own motion (a robust "
                         "affine fit, model.motion.Steadier); frame differences and distances to the mean "
                         "training frame are squared errors "
                         f"pooled over {cfg.score_patch}x{cfg.score_patch} patches (or the frame mean, *_mean); "
                         "baselines learn no statistics, so their online protocol is their raw score",
            "auc": "sklearn.metrics.roc_auc_score",
        },
        **report,
        "cues": cue_report,
        "at_threshold": threshold_report(normalised, labels, threshold),
        "baselines": baselines,
        "scoring_fps": round(n_frames / score_seconds, 2) if score_seconds > 0 else None,
        "elapsed_s": None,
    }
    if maps:
        metrics["pixel"] = {"auc": pixel_auc_of(np.concatenate(maps), np.concatenate(mask_grid)),
                            "grid": list(grid), "clips": len(maps)}
    curves = {"model, online": (*roc_points(online, labels), report["online"]["micro_auc"])}
    for name in ("flow_speed", "frame_difference"):
        curves[name.replace("_", " ")] = (*roc_points(base_scores[name], labels),
                                          auc_report(base_scores[name], labels)["micro_auc"])
    plot_roc(curves, out / "roc.png")
    write_scores(out / "scores.csv", labels, raw, online, normalised, threshold, base_scores, cues)
    for name in sorted(labels):
        plot_timeline(name, normalised[name], labels[name], threshold, out / "timelines" / f"{name}.png")
    metrics["elapsed_s"] = round(time.time() - t0, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
