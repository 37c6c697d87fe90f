"""The window path run by ONNX Runtime on a CPU: the model's scoring of one window (bands, encoder, temporal
modules, decoder, discriminator features, memory and the cues) exported once to an ONNX graph and run by
onnxruntime's CPU kernels, which measured faster than eager torch on the same windows (docs/benchmarks.md).

The graph takes one window (1, T, C_in, H, W) and returns each cue of its last `published` frames (the stride it
was exported for), with the combined raw score (the fields of `model.Scored` but the heatmap), as
`model.score_windows` has them; a window that publishes fewer frames takes the last of them. It needs the
optional packages of the `onnx` extra (onnxruntime to run it; onnx and onnxscript, beside torch, to export it);
without them the service keeps the torch path.

The graph is exported in a child process after start-up (export_in_background), so start-up stays quick and the
tracing never touches the model that scores meanwhile; until it is done, and for heatmaps, torch scores."""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model import OCRGANVideo, load_checkpoint
from model.ocrgan import Scored

log = logging.getLogger("ocrgan.service")

OPSET = 18
FIELDS = ("raw", "rec", "feat", "app", "motion", "speed", "dir", "mem", "grey")  # model.Scored's, in order, but
# the heatmap


def available() -> bool:
    """Whether onnxruntime can be imported here."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _WindowCues(nn.Module):
    """One window -> the tuple of its present fields (FIELDS) for its last `published` frames, (1, published)
    each."""

    def __init__(self, model: OCRGANVideo, names: tuple[str, ...], published: int) -> None:
        super().__init__()
        self.model = model
        self.names = names
        self.published = published

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t = clip.shape[1]
        s = self.model.score_detailed(clip, positions=slice(t - self.published, t))
        return tuple(getattr(s, k).float() for k in self.names)


def _hypot(a, b):
    """torch.hypot in ONNX operators (the flow's lengths, model.motion.flow_length): ONNX has no hypot."""
    from onnxscript import opset18 as op

    return op.Sqrt(op.Add(op.Mul(a, a), op.Mul(b, b)))


def present_fields(model: OCRGANVideo) -> tuple[str, ...]:
    """The fields of FIELDS that this model's scoring fills: the flow cues with the motion band, the memory cue
    with a memory, the grey cue with memory_grey."""
    cfg = model.cfg
    absent = ((set() if cfg.motion else {"motion", "speed", "dir"}) | (set() if cfg.memory_size else {"mem"})
              | (set() if cfg.memory_grey else {"grey"}))
    return tuple(k for k in FIELDS if k not in absent)


def export_window_scorer(model: OCRGANVideo, path: str | Path, published: int | None = None) -> Path:
    """Write the model's window scoring, in float32 on the CPU, as an ONNX graph at `path`: one window per call,
    the cues of its last `published` frames (default: the model's stride)."""
    if model.cfg.memory_size and not bool(model.memory.any()):
        raise ValueError("the model's memory is empty: fill it (training or `ocrgan calibrate`) before exporting")
    m = copy.deepcopy(model).float().cpu().eval()
    names = present_fields(m)
    clip = torch.zeros(1, m.cfg.num_frames, m.cfg.in_channels, *m.cfg.hw)
    table = {torch.ops.aten.hypot.default: _hypot, torch.ops.prims.hypot.default: _hypot}
    path = Path(path)
    with torch.inference_mode(), contextlib.redirect_stdout(sys.stderr):  # the exporter reports its steps
        torch.onnx.export(_WindowCues(m, names, published or m.cfg.stride), (clip,), str(path), dynamo=True,
                          opset_version=OPSET, input_names=["clip"], output_names=list(names),
                          custom_translation_table=table, verbose=False)
    return path


class OnnxWindowScorer:
    """An exported window graph (export_window_scorer) in an onnxruntime session on `threads` CPU threads."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = tuple(o.name for o in self.session.get_outputs())
        self.shape = torch.Size(self.session.get_inputs()[0].shape)

    @property
    def published(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def score(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """(1, T, C_in, H, W) window -> {field: (1, published)} for the fields the graph returns."""
        if clip.shape != self.shape:
            raise ValueError(f"the exported graph scores windows of shape {self.shape}, got {tuple(clip.shape)}")
        x = np.ascontiguousarray(clip.detach().cpu().float().numpy())
        return {k: torch.from_numpy(v) for k, v in zip(self.names, self.session.run(None, {"clip": x}), strict=True)}


class WindowRunner:
    """`model.score_detailed` for `model.score_windows(run=...)`: windows whose published frames the graph holds
    (at most `scorer.published`, no heatmap) by ONNX Runtime, one window per run; anything else by the model."""

    def __init__(self, model: OCRGANVideo, scorer: OnnxWindowScorer) -> None:
        self.model = model
        self.scorer = scorer

    def __call__(self, clip: torch.Tensor, positions: slice, heatmap: bool) -> Scored:
        t = clip.shape[1]
        first, stop, step = positions.indices(t)
        k = stop - first
        fits = stop == t and step == 1 and k <= self.scorer.published and clip.shape[1:] == self.scorer.shape[1:]
        if heatmap or not fits:
            return self.model.score_detailed(clip, positions, heatmap)
        parts = [self.scorer.score(clip[i:i + 1]) for i in range(len(clip))]
        fields = {name: torch.cat([p[name] for p in parts])[:, -k:] for name in self.scorer.names}
        return Scored(**{name: fields.get(name) for name in FIELDS}, heatmap=None)


def export_in_background(checkpoint: str | Path, published: int, threads: int,
                         ready: Callable[[OnnxWindowScorer], None]) -> threading.Thread:
    """Export the checkpoint's window scoring in a child process (its own interpreter: the exporter traces the
    model, which must not touch the one scoring meanwhile) and hand `ready` a scorer of it; logs a failure and
    leaves the caller on torch."""
    def run() -> None:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="ocrgan-onnx-") as tmp:
            out = Path(tmp) / "window.onnx"
            cmd = [sys.executable, "-m", "service.inference.onnx_runtime", str(checkpoint), str(out),
                   "--published", str(published)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not out.exists():
                tail = (done.stderr or "").strip().splitlines()[-3:]
                log.error("ONNX export failed (exit %d), the window path stays on torch: %s", done.returncode,
                          " | ".join(tail))
                return
            try:
                scorer = OnnxWindowScorer(out, threads)
            except Exception:
                log.exception("ONNX Runtime could not load the exported graph; the window path stays on torch")
                return
        log.info("window path on ONNX Runtime (%d thread(s)) after %.1f s of export", threads,
                 time.monotonic() - started)
        ready(scorer)

    thread = threading.Thread(target=run, name="onnx-export", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="export a checkpoint's window scoring to ONNX")
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--published", type=int, default=None, help="frames each window publishes (default: stride)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_checkpoint(args.checkpoint)
    export_window_scorer(model, args.out, args.published)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
