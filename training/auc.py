"""Frame-level AUC under the online and offline protocols (ROC from scikit-learn)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import roc_auc_score, roc_curve

DUMMY_RULE = (
    "a clip whose frames are all of one class gets one dummy normal frame at the clip's lowest score and one "
    "dummy anomalous frame at its highest (as the Jigsaw-VAD and AED-MAE reference code does)"
)


def minmax(s: np.ndarray) -> np.ndarray:
    span = float(s.max() - s.min())
    return (s - s.min()) / span if span > 0 else np.zeros_like(s, dtype=np.float64)


def gaussian(s: np.ndarray, sigma: float) -> np.ndarray:
    """Centred Gaussian smoothing (uses future frames: offline only)."""
    return gaussian_filter1d(s.astype(np.float64), sigma, mode="nearest") if sigma > 0 else s


def clip_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    if labels.min() == labels.max():
        scores = np.r_[scores.min(), scores, scores.max()]
        labels = np.r_[0, labels, 1]
    return float(roc_auc_score(labels, scores))


def auc_report(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
    """micro (one ROC over all frames); macro, the mean AUC of the clips that hold both classes (the
    headline); and macro_dummy, the mean over every clip with the dummy rule for one-class clips."""
    names = sorted(scores)
    y = np.concatenate([labels[n] for n in names])
    s = np.concatenate([scores[n] for n in names])
    every = {n: clip_auc(scores[n], labels[n]) for n in names}
    mixed = {n: v for n, v in every.items() if labels[n].min() != labels[n].max()}
    return {
        "micro_auc": float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None,
        "macro_auc": float(np.mean(list(mixed.values()))) if mixed else None,
        "macro_auc_dummy": float(np.mean(list(every.values()))),
        "per_clip": mixed,
        "per_clip_dummy": every,
    }


def protocols(raw: dict[str, np.ndarray], online: dict[str, np.ndarray], labels: dict[str, np.ndarray],
              sigma: float) -> dict[str, dict]:
    """online: the scores as published; offline: per-clip min-max of raw scores; offline_gaussian:
    the same after centred Gaussian smoothing."""
    return {
        "online": auc_report(online, labels),
        "offline": auc_report({k: minmax(v) for k, v in raw.items()}, labels),
        "offline_gaussian": {"sigma": sigma,
                             **auc_report({k: minmax(gaussian(v, sigma)) for k, v in raw.items()}, labels)},
    }


def roc_points(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    names = sorted(scores)
    fpr, tpr, _ = roc_curve(np.concatenate([labels[n] for n in names]), np.concatenate([scores[n] for n in names]))
    return fpr, tpr


def threshold_report(normalised: dict[str, np.ndarray], labels: dict[str, np.ndarray], threshold: float) -> dict:
    """What the stored threshold does on these frames."""
    names = sorted(normalised)
    y = np.concatenate([labels[n] for n in names]).astype(bool)
    pred = np.concatenate([normalised[n] for n in names]) > threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"threshold": threshold, "precision": precision, "recall": recall, "f1": f1,
            "false_positive_rate": fp / (fp + tn) if fp + tn else None, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def pixel_auc(maps: np.ndarray, masks: np.ndarray) -> float | None:
    """ROC AUC over pixels of all frames (maps and masks of one shape)."""
    y = masks.reshape(-1).astype(np.uint8)
    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, maps.reshape(-1)))
