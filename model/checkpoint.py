"""Checkpoints: safetensors weights plus a JSON header carrying everything needed to score.

Loading never unpickles anything: the file is a safetensors container whose metadata holds the
format version, model config, input spec, score statistics and training notes, and a SHA-256 of
the tensors and of that header, so a corrupted file, or one whose weights or header were edited, is
refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from model.config import OCRGANConfig
from model.files import atomic_write
from model.ocrgan import OCRGANVideo
from model.preprocess import input_spec

FORMAT = "ocrgan-video"
FORMAT_VERSION = 4  # 2: the SHA-256 covers the header as well as the tensors; 3: the motion band and its scales;
# 4: the direction prior, the memory of normal patches and their cues


SCORE_BUFFERS = ("app_scale", "motion_scale", "speed_scale", "dir_scale", "mem_scale", "grey_scale", "rec_scale",
                 "feat_scale", "score_mean", "score_std", "threshold")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason."""


@dataclass
class CheckpointInfo:
    path: str
    format_version: int
    config: OCRGANConfig
    input_spec: dict[str, Any]
    score: dict[str, float]
    training: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    half: bool = False  # weights stored as fp16


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of all tensors, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def checkpoint_digest(tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> str:
    """SHA-256 over the tensors (`tensors_digest`) and the canonical JSON of the header without its digest."""
    fields = {k: v for k, v in header.items() if k != "sha256"}
    h = hashlib.sha256(tensors_digest(tensors).encode())
    h.update(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def save_checkpoint(model: OCRGANVideo, path: str | Path, training: dict[str, Any] | None = None,
                    half: bool = False) -> str:
    """Write the model atomically; `half` stores weights as fp16 (scalars stay fp32). Returns the digest."""
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        if half and t.is_floating_point() and t.numel() > 1:
            t = t.half()
        tensors[name] = t.clone()
    score = {k: float(getattr(model, k)) for k in SCORE_BUFFERS if hasattr(model, k)}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "input_spec": input_spec(model.cfg),
        "score": score,
        "training": training or {},
        "half": half,
    }
    header["sha256"] = digest = checkpoint_digest(tensors, header)
    meta = {"ocrgan": json.dumps(header)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return digest


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a checkpoint, validated for format and version."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {p} is truncated or not a safetensors file: {e}") from e
    if "ocrgan" not in meta:
        raise CheckpointError(f"{p} is a safetensors file but not an {FORMAT} checkpoint (no 'ocrgan' header)")
    try:
        header = json.loads(meta["ocrgan"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {p} has an unreadable header: {e}") from e
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {p} has format {header.get('format')!r}, expected {FORMAT!r}")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {p} has format version {version!r}; this build reads version {FORMAT_VERSION}"
        )
    return header


def _load_tensors(p: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(p), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {p} is truncated or corrupted: {e}") from e


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[OCRGANVideo, CheckpointInfo]:
    """The model in eval mode on `device`, and what the checkpoint says about it."""
    p = Path(path)
    header = read_header(p)
    try:
        cfg = OCRGANConfig.from_dict(header["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {p} has an invalid model config: {e}") from e
    tensors = _load_tensors(p)
    model = OCRGANVideo(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"checkpoint {p}: config and weights disagree: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
            f"wrong shape {shapes[:5]}{'...' if len(shapes) > 5 else ''}"
        )
    if checkpoint_digest(tensors, header) != header.get("sha256"):
        raise CheckpointError(f"checkpoint {p}: weights or header do not match the recorded SHA-256 "
                              "(corrupted or edited)")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    model.to(device).eval()
    info = CheckpointInfo(
        path=str(p),
        format_version=header["format_version"],
        config=cfg,
        input_spec=header.get("input_spec", {}),
        score=header.get("score", {}),
        training=header.get("training", {}),
        sha256=header["sha256"],
        half=bool(header.get("half", False)),
    )
    return model, info
