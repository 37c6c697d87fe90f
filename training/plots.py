"""Pictures people look at: ROC curves and per-clip score timelines with the anomalies shaded."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from model.windows import anomalous_runs


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path) -> None:
    """curves: name -> (fpr, tpr, auc)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", lw=1.5 if "model" in name else 1.0)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="frame-level ROC", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_timeline(name: str, normalised: np.ndarray, labels: np.ndarray, threshold: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 2.6))
    t = np.arange(len(normalised))
    for a, b in anomalous_runs(labels):
        ax.axvspan(a - 0.5, b - 0.5, color="tab:red", alpha=0.15, lw=0)
    ax.plot(t, normalised, color="tab:blue", lw=1.2, label="score (normalised)")
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set(xlabel="frame", ylabel="score", title=f"clip {name} (shaded: ground-truth anomaly)")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

