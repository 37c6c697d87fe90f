"""How the score combines its parts, chosen on validation data: for each weighting of the appearance error, the
flow error, the flow's magnitude, the surprise of its direction and the distance to the memory, how well the
score separates normal validation frames from each kind of synthetic anomaly. The weighting with the best mean
AUC over kinds is kept (exact ties go to the smaller sum of weights); each row's standard error is reported.

It used to be the simplest weighting (the smallest sum of weights) within one standard error of the best. That
rule dropped the cues that only some kinds of anomaly need: on synthetic walkers (tests/training/test_detection.py)
it left the memory out and ranked a walker going the wrong way at AUC 0.875 and a foreign object at a walker's
pace at 0.339, where the best-mean weighting, which keeps the memory, gives 0.969 and 0.791 (an object too fast:
0.996 and 1.0). On Ped2 both rules choose the same weighting.

When training ends (and with `ocrgan calibrate --select-weights`), the weights are chosen on two views of the
validation footage: the scene as it is, and as a camera of another scene might show it (FrameStore.foreign:
inverted and mirrored), the model there calibrated as the service calibrates a camera (units only; the memory
and the direction prior stay the scene's). The weighting with the best mean over the two views' means is kept.
A checkpoint is used on cameras it was not trained on, and the appearance error carries there least: on a copy of
Ped2 inverted and mirrored, calibrated as a camera, it ranks the test frames below chance alone (AUC 0.42, a test
figure that chose nothing), where the flow cues read as on the scene.

The discriminator-feature distance joins the score at a fixed weight, FEAT_WEIGHT, and is not chosen here: the
discriminator is trained to tell normal frames from pasted patches and objects, the very family the synthetic
anomalies belong to, so they overrate it (on Ped2 they chose its largest weight, which cost 0.04 of test AUC)."""

from __future__ import annotations

import csv
import itertools
import logging
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from model import OCRGANVideo, Window, score_windows
from model.scales import cue_values, extreme
from model.scoring import CUES, combine_cues
from training.validation import ValidationSet

log = logging.getLogger(__name__)
APP_WEIGHTS = (0.25, 0.5, 1.0)  # relative to the motion cues' weight of 1, each in units of its extreme; the
# appearance error always counts when it is far beyond anything normal (a foreign object at a normal speed)
FEAT_WEIGHT = 0.25  # of the feature distance, in the same units: it counts when far beyond anything normal
MOTION_WEIGHTS = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))  # (flow error, flow magnitude): one or both
DIR_WEIGHTS = (0.0, 0.5, 1.0)  # of the direction surprise: left out, or counting when beyond anything normal
MEM_WEIGHTS = (0.0, 0.5, 1.0)  # of the distance to the memory of normal patches (with one), likewise
GREY_WEIGHTS = (0.0, 0.5, 1.0)  # of the distance to the remembered grey levels (with them), likewise


@torch.no_grad()
def window_parts(model: OCRGANVideo, windows: list[Window], batch: int = 8) -> dict[str, torch.Tensor | None]:
    """Each cue's values for the published frames of `windows`, in order."""
    model.eval()
    return cue_values([r for a in range(0, len(windows), batch) for r in score_windows(model, windows[a:a + batch])])


def auc_se(auc: float, n_neg: int, n_pos: int) -> float:
    """Standard error of an AUC (Hanley and McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def as_cue_weights(row: dict[str, float]) -> dict[str, float]:
    """{"w_score_app": .., ...} -> {"app": .., ...}"""
    return {k: row[f"w_score_{k}"] for k in CUES}


def candidates(motion: bool, memory: bool = False, grey: bool = False) -> list[dict[str, float]]:
    motions = MOTION_WEIGHTS if motion else ((0.0, 0.0),)
    apps = APP_WEIGHTS if motion or memory else (1.0,)
    return [{"w_score_app": a, "w_score_motion": m, "w_score_speed": s, "w_score_dir": d, "w_score_mem": k,
             "w_score_grey": g, "w_score_feat": FEAT_WEIGHT}
            for (m, s), a, d, k, g in itertools.product(motions, apps, DIR_WEIGHTS if motion else (0.0,),
                                                         MEM_WEIGHTS if memory else (0.0,),
                                                         GREY_WEIGHTS if grey else (0.0,))]


def weighting_rows(model: OCRGANVideo, vs: ValidationSet, scales: dict[str, float] | None = None,
                   without: tuple[str, ...] = ()) -> list[dict]:
    """Every candidate weighting (none of the cues `without`) with its pseudo-anomaly AUC per kind, their mean and
    its standard error. Each part is in the units calibration gives it (`scales`; by default its extreme on the
    normal validation frames)."""
    normal, forged = window_parts(model, vs.windows), window_parts(model, vs.forged)
    kinds = np.array(vs.kinds).repeat([len(w.indices) for w in vs.forged])
    if scales is None:
        scales = {k: extreme(v) if v is not None else 1.0 for k, v in normal.items()}
    rows = []
    for weights in candidates(normal["motion"] is not None, normal["mem"] is not None, normal["grey"] is not None):
        if any(weights[f"w_score_{k}"] for k in without):
            continue
        w = as_cue_weights(weights)
        neg, pos = combine_cues(normal, w, scales).numpy(), combine_cues(forged, w, scales).numpy()
        row = dict(weights)
        ses = []
        for kind in dict.fromkeys(vs.kinds):
            p = pos[kinds == kind]
            row[kind] = float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(p))], np.r_[neg, p]))
            ses.append(auc_se(row[kind], len(neg), len(p)))
        row["mean"] = float(np.mean([row[k] for k in dict.fromkeys(vs.kinds)]))
        row["mean_se"] = float(np.sqrt(np.sum(np.square(ses)))) / len(ses)
        rows.append(row)
    return rows


def _best(rows: list[dict]) -> dict:
    """The weighting with the best mean; of exact ties, the smaller sum of weights."""
    return max(rows, key=lambda r: (r["mean"], -sum(as_cue_weights(r).values())))


def select_weights(model: OCRGANVideo, vs: ValidationSet, scales: dict[str, float] | None = None,
                   foreign: tuple[OCRGANVideo, ValidationSet] | None = None,
                   without: tuple[str, ...] = ()) -> tuple[dict[str, float], list[dict]]:
    """The score weights with the best mean pseudo-anomaly AUC over kinds (weighting_rows), and the table of every
    weighting tried. With `foreign` (the model calibrated as a camera of another scene would calibrate it, and
    validation made from that camera's view: FrameStore.foreign), the best mean over both views: each row keeps
    the scene's own figures, `mean` is the mean of the two views' means and the foreign view's figures are added
    as `foreign_<kind>`, `foreign_mean`. A checkpoint is used on cameras it was not trained on, and cues that read
    the scene's appearance do not all carry there: on Ped2 the scene alone prefers the appearance error at weight 1
    (pseudo-AUC 0.907 against 0.900 at 0.5), the foreign view at 0.5 (0.813 against 0.797), and the mean 0.5."""
    rows = weighting_rows(model, vs, scales, without)
    if foreign is not None:
        others = weighting_rows(foreign[0], foreign[1], foreign[0].scales(), without)
        for row, other in zip(rows, others, strict=True):
            row.update({f"foreign_{k}": v for k, v in other.items() if not k.startswith("w_")})
            row["own_mean"] = row["mean"]
            row["mean"] = (row["own_mean"] + other["mean"]) / 2
            row["mean_se"] = float(np.hypot(row["mean_se"], other["mean_se"])) / 2
    best = _best(rows)
    weights = {f"w_score_{k}": v for k, v in as_cue_weights(best).items()}
    log.info("score weights chosen on validation%s: %s (mean pseudo-anomaly AUC %.4f)",
             " and its foreign view" if foreign is not None else "", weights, best["mean"])
    return weights, rows


def chosen_figures(table: list[dict]) -> dict[str, float]:
    """The validation figures (without the weights) of the weighting select_weights chose from `table`."""
    return {k: v for k, v in _best(table).items() if not k.startswith("w_")}


def write_table(table: list[dict], path: Path) -> None:
    """Every weighting tried, with its figures, as CSV (`score_weights.csv` of a run)."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
