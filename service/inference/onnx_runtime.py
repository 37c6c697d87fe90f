"""The model's scoring run by ONNX Runtime on a CPU: exported once to ONNX graphs and run by onnxruntime's CPU
kernels, which measured faster than eager torch on the same inputs (docs/benchmarks.md). Two graphs:
- the window path: one window (1, T, C_in, H, W) -> each cue of its last `published` frames (the stride it was
  exported for), with the combined raw score and the heat cues' maps (the fields of `model.Scored`), as
  `model.score_windows` has them; a window that publishes fewer frames takes the last of them;
- the frame path (model.streaming): one new frame with its context (1, c + 1, C_in, H, W) and, per kind of
  per-frame tensor its sequence keeps (model.streaming.frame_keys), the frames before it that it reads -> the
  frame's cues and maps and its own per-frame tensors, which the sequence's rings keep for the frames after it.
  A sequence's first frame (its rings are empty) is scored by torch, over the same rings.

It needs onnxruntime to run it and onnx and onnxscript, beside torch, to export it (all in the `service` extra);
without them the service keeps the torch path.

The graphs are exported in a child process after start-up (export_in_background), so start-up stays quick and the
tracing never touches the model that scores meanwhile; until it is done, torch scores."""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import importlib.util
import logging
import os
import shutil
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
from model.streaming import KEYS, VALUES, FrameStream, frame_keys, frame_tensors, score_frames, score_stacked
from model.temporal import Known

log = logging.getLogger("ocrgan.service")

OPSET = 18
FIELDS = ("raw", "rec", "feat", "app", "motion", "speed", "dir", "mem", "grey")  # model.Scored's, in order, but
# the maps
_DENORMAL = torch.tensor([1e-39])  # below float32's smallest normal number: a thread that flushes reads it as 0


def available() -> bool:
    """Whether onnxruntime, and the exporter's onnx and onnxscript, are installed here (found, not imported: a
    service on torch does not load them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "onnxscript"))


class _WindowCues(nn.Module):
    """One window -> the tuple of its present fields (FIELDS) for its last `published` frames, (1, published)
    each, then their heat cues' maps (1, published, k, H, W): a camera's snapshot asks for them about every
    second, a few per cent of a window's cost, which torch would otherwise score in full."""

    def __init__(self, model: OCRGANVideo, names: tuple[str, ...], published: int) -> None:
        super().__init__()
        self.model = model
        self.names = names
        self.published = published

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t = clip.shape[1]
        s = self.model.score_detailed(clip, positions=slice(t - self.published, t), heatmap=True)
        return (*(getattr(s, k).float() for k in self.names), s.maps.float())


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


def _exportable(model: OCRGANVideo) -> OCRGANVideo:
    """A float32 CPU copy of the model to trace; refused while its memory is empty (the graph would hold that)."""
    if model.cfg.memory_size and not bool(model.memory.any()):
        raise ValueError("the model's memory is empty: fill it (training or `ocrgan calibrate`) before exporting")
    return copy.deepcopy(model).float().cpu().eval()


def _export(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: str | Path, input_names: list[str],
            output_names: list[str]) -> None:
    table = {torch.ops.aten.hypot.default: _hypot, torch.ops.prims.hypot.default: _hypot}
    with torch.inference_mode(), contextlib.redirect_stdout(sys.stderr):  # the exporter reports its steps
        torch.onnx.export(module, inputs, str(path), dynamo=True, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, custom_translation_table=table, verbose=False,
                          external_data=False)  # one file, the weights in it: a cache can keep it


def _session(path: str | Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.set_denormal_as_zero", "1")  # its own threads' (denormals_flushed)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def denormals_flushed():
    """Compute on this thread with denormal floats taken as zero, the thread left as it was after: the attention's
    softmax over masked frames makes them (the exponential of the masked logits underflows), and ONNX Runtime's CPU
    kernels run several times slower on them (a softmax over 12 masked of 16 frames: 80 against 15 µs;
    docs/benchmarks.md). What it changes is below 1e-38. A session's own threads are set so by its options
    (_session); with one thread, the graph runs on the caller's."""
    was = bool((_DENORMAL * 1.0).item() == 0.0)  # whether this thread flushes them already
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not was:
            torch.set_flush_denormal(False)


def export_window_scorer(model: OCRGANVideo, path: str | Path, published: int | None = None) -> Path:
    """Write the model's window scoring, in float32 on the CPU, as an ONNX graph at `path`: one window per call,
    the cues of its last `published` frames (default: the model's stride)."""
    m = _exportable(model)
    names = present_fields(m)
    clip = torch.zeros(1, m.cfg.num_frames, m.cfg.in_channels, *m.cfg.hw)
    _export(_WindowCues(m, names, published or m.cfg.stride), (clip,), path, ["clip"], [*names, "maps"])
    return Path(path)


class OnnxWindowScorer:
    """An exported window graph (export_window_scorer) in an onnxruntime session on `threads` CPU threads. The
    session can be closed while the graph is not wanted (close()) and opens again on the next score."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path, self.threads = Path(path), threads
        self._session = None
        self._gone = False  # the session could not be opened again (opens)
        self._lock = threading.Lock()
        session = self.session
        self.names = tuple(o.name for o in session.get_outputs())
        self.shape = torch.Size(session.get_inputs()[0].shape)
        if self.names[-1:] != ("maps",) or not set(self.names[:-1]) <= set(FIELDS):
            raise ValueError(f"{path} is not a window graph of this version (outputs {', '.join(self.names)})")
        self.published = int(session.get_outputs()[0].shape[-1])

    @property
    def session(self):
        with self._lock:
            if self._session is None:
                self._session = _session(self.path, self.threads)
            return self._session

    @property
    def is_open(self) -> bool:
        return self._session is not None

    def opens(self) -> bool:
        """Whether the session is open or opens now; a graph gone from its place since is logged, once, and not
        tried again."""
        if self._gone:
            return False
        try:
            return self.session is not None
        except Exception as e:
            log.error("the ONNX window graph %s cannot be opened again (%s): windows go to torch", self.path, e)
            self._gone = True
            return False

    def close(self) -> None:
        """Let go of the session, its weights and its memory (some 50 MB for the shipped model's, verification
        included); the next score opens it again from `path`, which must stay in place."""
        with self._lock:
            self._session = None

    def score(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """(1, T, C_in, H, W) window -> {field: (1, published)} for the fields the graph returns, and "maps":
        (1, published, k, H, W)."""
        if clip.shape != self.shape:
            raise ValueError(f"the exported graph scores windows of shape {self.shape}, got {tuple(clip.shape)}")
        x = np.ascontiguousarray(clip.detach().cpu().float().numpy())
        with denormals_flushed():
            out = self.session.run(None, {"clip": x})
        return {k: torch.from_numpy(v) for k, v in zip(self.names, out, strict=True)}


class WindowRunner:
    """`model.score_detailed` for `model.score_windows(run=...)`: windows whose published frames the graph holds
    (at most `scorer.published`), with their heatmaps or not, by ONNX Runtime, one window per run; anything else by
    the model."""

    def __init__(self, model: OCRGANVideo, scorer: OnnxWindowScorer) -> None:
        self.model = model
        self.scorer = scorer

    def __call__(self, clip: torch.Tensor, positions: slice, heatmap: bool) -> Scored:
        t = clip.shape[1]
        first, stop, step = positions.indices(t)
        k = stop - first
        fits = stop == t and step == 1 and k <= self.scorer.published and clip.shape[1:] == self.scorer.shape[1:]
        if not fits or not self.scorer.opens():
            return self.model.score_detailed(clip, positions, heatmap)
        parts = [self.scorer.score(clip[i:i + 1]) for i in range(len(clip))]
        fields = {name: torch.cat([p[name] for p in parts])[:, -k:] for name in self.scorer.names}
        return Scored(**{name: fields.get(name) for name in FIELDS}, maps=fields["maps"] if heatmap else None)


class _FrameCues(nn.Module):
    """One new frame with its context and, per kind of frame_keys, the frames before it that it reads -> the
    tuple of its present fields (FIELDS), (1, 1) each, its heat cues' maps (1, 1, k, H, W), then its own per-frame
    tensors (without the frame axis). The maps are those the score reads, drawn into a heatmap outside: a
    camera's snapshot asks for one about every second, which torch would otherwise score in full (2-3 times a
    frame's cost in the graph)."""

    def __init__(self, model: OCRGANVideo, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names
        self.keys = frame_keys(model)

    def forward(self, clip: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        levels, new, lap, res = frame_tensors(self.model, clip)
        before = dict(zip(self.keys, past, strict=True))  # (S - 1, ...) each
        windows = [torch.cat([before[i], new[i]])[None] if i in before else x[:, None] for i, x in enumerate(levels)]
        kv = {b: [Known((before[b, KEYS], new[b, KEYS]), (before[b, VALUES], new[b, VALUES]))]  # read where they lie
              for b in (k[0] for k in self.keys if isinstance(k, tuple) and k[1] == KEYS)}
        s = score_stacked(self.model, clip, (lap, res), windows, kv, heatmap=True)
        return (*(getattr(s, k).float() for k in self.names), s.maps.float(), *(new[k][0] for k in self.keys))


def _frame_inputs(model: OCRGANVideo) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Example inputs of the frame graph: a frame with its context, and each kind's past frames (frame_spans)."""
    cfg = model.cfg
    clip = torch.zeros(1, model.context_frames + 1, cfg.in_channels, *cfg.hw)
    stream = FrameStream(model)
    with torch.inference_mode():
        score_frames(model, [(stream, clip[0, -1:])])  # fills the rings: their shapes are the past's
    return clip, [stream.past(k).clone() for k in frame_keys(model)]


def export_frame_scorer(model: OCRGANVideo, path: str | Path) -> Path:
    """Write the model's frame-by-frame scoring (model.streaming), in float32 on the CPU, as an ONNX graph at
    `path`: one frame per call."""
    if not model.cfg.causal:
        raise ValueError(f'objective "{model.cfg.objective}" sees later frames: it cannot score frame by frame')
    m = _exportable(model)
    clip, past = _frame_inputs(m)
    module = _FrameCues(m, present_fields(m))
    names = [*module.names, "maps", *(f"new{i}" for i in range(len(past)))]
    _export(module, (clip, *past), path, ["clip", *(f"past{i}" for i in range(len(past)))], names)
    return Path(path)


class OnnxFrameScorer:
    """An exported frame graph (export_frame_scorer) in an onnxruntime session on `threads` CPU threads, for the
    model it was exported from (whose rings it shares)."""

    def __init__(self, path: str | Path, model: OCRGANVideo, threads: int = 1) -> None:
        self.session = _session(path, threads)
        self.keys = frame_keys(model)
        outputs = [o.name for o in self.session.get_outputs()]
        self.names = tuple(outputs[:len(outputs) - len(self.keys)])
        self.shape = torch.Size(self.session.get_inputs()[0].shape)
        if (len(self.session.get_inputs()) != 1 + len(self.keys) or self.names[-1:] != ("maps",)
                or not set(self.names[:-1]) <= set(FIELDS)):
            raise ValueError(f"{path} is not a frame graph of this model and version")

    def score(self, stream: FrameStream, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """A begun sequence's new frames (n, C_in, H, W), in order -> {field: (1, n)} and "maps": (1, n, k, H, W);
        keeps each frame's per-frame tensors in the sequence's rings."""
        if not stream.rings:
            raise ValueError("the sequence has not begun: its first frame is scored by torch")
        if frames.shape[1:] != self.shape[2:]:
            raise ValueError(f"the exported graph scores frames of shape {tuple(self.shape[2:])}, got "
                             f"{tuple(frames.shape[1:])}")
        rows = []
        with denormals_flushed():
            for clip in stream.inputs(frames.detach().cpu().float()):
                feed = {"clip": clip[None].numpy(), **{f"past{i}": stream.past(k).numpy()
                                                       for i, k in enumerate(self.keys)}}
                out = self.session.run(None, feed)
                rows.append(out[:len(self.names)])
                for k, v in zip(self.keys, out[len(self.names):], strict=True):
                    stream.push(k, torch.from_numpy(v))
                stream.count += 1
        return {name: torch.from_numpy(rows[0][i] if len(rows) == 1 else np.concatenate([r[i] for r in rows], axis=1))
                for i, name in enumerate(self.names)}


class FrameRunner:
    """The service's frame path (service.inference.frame_jobs): a begun sequence's frames by ONNX Runtime, one frame
    per run, with their heatmaps or not; a sequence's first frames and other devices by torch
    (`model.streaming.score_frames`, over the same rings)."""

    def __init__(self, model: OCRGANVideo, scorer: OnnxFrameScorer) -> None:
        self.model = model
        self.scorer = scorer

    def __call__(self, stream: FrameStream, frames: torch.Tensor, heatmap: bool) -> Scored:
        """One sequence's new frames (n, C_in, H, W), in order -> their Scored, each field (1, n)."""
        if not stream.rings:
            return score_frames(self.model, [(stream, frames)], heatmap)[0]
        fields = self.scorer.score(stream, frames)
        return Scored(**{name: fields.get(name) for name in FIELDS}, maps=fields["maps"] if heatmap else None)


GRAPH_VERSION = 7  # of the graphs' inputs and outputs; a cached graph of another version is not read


def cached_name(sha256: str, kind: str, published: int) -> str:
    """The file name a checkpoint's exported graph of `kind` is kept under: the checkpoint's digest, the graph's
    kind (and a window graph's published frames), and the versions that made it."""
    import onnxruntime

    what = f"window{published}" if kind == "window" else kind
    return f"{sha256[:16]}-{what}-v{GRAPH_VERSION}-torch{torch.__version__}-ort{onnxruntime.__version__}.onnx"


def verify(runner: WindowRunner | FrameRunner, tolerance: float = 1e-3) -> None:
    """Raise ValueError unless the runner's graph scores a random window (or, for the frame graph, a random
    sequence's second frame), with its maps, as its model does in torch: a graph read from a cache may be of
    other code."""
    model = runner.model
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    if isinstance(runner, WindowRunner):
        t, k = cfg.num_frames, runner.scorer.published
        clip = torch.rand(1, t, cfg.in_channels, *cfg.hw, generator=g) * 2 - 1
        a, b = runner(clip, slice(t - k, t), True), model.score_detailed(clip, slice(t - k, t), heatmap=True)
        ours, theirs = torch.cat([a.raw.flatten(), a.maps.flatten()]), torch.cat([b.raw.flatten(),
                                                                                     b.maps.flatten()])
    else:
        frames = torch.rand(2, cfg.in_channels, *cfg.hw, generator=g) * 2 - 1
        a, b = FrameStream(model), FrameStream(model)
        score_frames(model, [(a, frames[:1]), (b, frames[:1])])
        x, y = runner(a, frames[1:], True), score_frames(model, [(b, frames[1:])], True)[0]
        ours, theirs = torch.cat([x.raw.flatten(), x.maps.flatten()]), torch.cat([y.raw.flatten(),
                                                                                     y.maps.flatten()])
    ours, theirs = ours.flatten(), theirs.flatten()
    if not torch.allclose(ours, theirs, rtol=tolerance, atol=1e-6):
        i = int(((ours - theirs).abs() / theirs.abs().clamp_min(1e-6)).argmax())
        raise ValueError(f"the {type(runner).__name__}'s graph scores {float(ours[i])} where the model scores "
                         f"{float(theirs[i])} (of {len(theirs)} values, the furthest apart)")


def _runner(kind: str, path: Path, model: OCRGANVideo, threads: int) -> WindowRunner | FrameRunner:
    """A verified runner of the graph at `path` (verify)."""
    runner = (WindowRunner(model, OnnxWindowScorer(path, threads)) if kind == "window"
              else FrameRunner(model, OnnxFrameScorer(path, model, threads)))
    verify(runner)
    return runner


def export_in_background(checkpoint: str | Path, model: OCRGANVideo, kinds: list[str], published: int, threads: int,
                         ready: Callable[[str, WindowRunner | FrameRunner], None], sha256: str = "",
                         cache: Path | None = None, standby: frozenset[str] = frozenset()) -> threading.Thread:
    """Run the checkpoint's scoring paths `kinds` ("window", with `published` frames per window, and "frame") in
    ONNX Runtime, in that order, and hand `ready(kind, runner)` each runner of `model` (the loaded checkpoint, of
    digest `sha256`) as it is done. A graph is read from `cache` when it holds one for this checkpoint and these
    versions, else exported in a child process (its own interpreter: the exporter traces the model, which must not
    touch the one scoring meanwhile) and kept in `cache`. Every graph is verified against the model before use. A
    failure is logged and leaves that path on torch. A window graph in `standby` (one that may go unused for long:
    only uploads read it where cameras are scored frame by frame) has its session closed once verified, when it is
    kept in `cache`, and opened again on its first window. What the verifications allocated is handed back to the
    system at the end."""
    def run() -> None:
        for kind in kinds:
            runner = _read_or_export(kind)
            if runner is None:
                continue
            if kind in standby and isinstance(runner, WindowRunner) and runner.scorer.path.exists():
                runner.scorer.close()
                log.info("%s graph on standby: its session opens on the first window it scores", kind)
            ready(kind, runner)
        release_memory()

    def _read_or_export(kind: str) -> WindowRunner | FrameRunner | None:
        started = time.monotonic()
        kept = cache / cached_name(sha256, kind, published) if cache is not None and sha256 else None
        if kept is not None and kept.exists():
            try:
                runner = _runner(kind, kept, model, threads)
            except Exception as e:
                log.warning("the cached ONNX %s graph %s cannot be used (%s); exporting it again", kind, kept, e)
                kept.unlink(missing_ok=True)
            else:
                log.info("%s path on ONNX Runtime (%d thread(s)), its graph read from %s", kind, threads, kept)
                return runner
        with tempfile.TemporaryDirectory(prefix="ocrgan-onnx-") as tmp:
            out = Path(tmp) / f"{kind}.onnx"
            args = ["--frames"] if kind == "frame" else ["--published", str(published)]
            cmd = [sys.executable, "-m", "service.inference.onnx_runtime", str(checkpoint), str(out), *args,
                   "--parent", str(os.getpid())]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not out.exists():
                tail = (done.stderr or "").strip().splitlines()[-3:]
                log.error("ONNX export of the %s path failed (exit %d), it stays on torch: %s", kind,
                          done.returncode, " | ".join(tail))
                return None
            try:
                runner = _runner(kind, out, model, threads)
            except Exception:
                log.exception("ONNX Runtime could not run the exported %s graph; that path stays on torch", kind)
                return None
            if kept is not None and _keep(out, kept) and isinstance(runner, WindowRunner):
                runner.scorer.path = kept  # the exported file goes with the temporary folder
        log.info("%s path on ONNX Runtime (%d thread(s)) after %.1f s of export", kind, threads,
                 time.monotonic() - started)
        return runner

    thread = threading.Thread(target=run, name="onnx-export", daemon=True)
    thread.start()
    return thread


def _keep(graph: Path, kept: Path) -> bool:
    """Copy an exported graph into the cache, whole or not at all, and say whether it is there; a cache that cannot
    be written is logged."""
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        part = kept.with_suffix(f".part{os.getpid()}-{os.urandom(4).hex()}")  # replicas may share the cache
        shutil.copyfile(graph, part)
        os.replace(part, kept)
    except OSError as e:
        log.warning("the exported graph could not be kept in %s (%s): the next start exports it again", kept.parent, e)
        return False
    return True


def release_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim): what a verification or an export
    allocated once stays in the process's RSS otherwise. Nothing where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _die_with(parent: int) -> None:
    """End this process when `parent` does (Linux's PR_SET_PDEATHSIG): an export outliving a stopped service
    would take a core for nothing."""
    if sys.platform.startswith("linux"):
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the line above
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="export a checkpoint's window (or frame-by-frame) scoring to ONNX")
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--published", type=int, default=None, help="frames each window publishes (default: stride)")
    ap.add_argument("--frames", action="store_true", help="export the frame-by-frame path (model.streaming)")
    ap.add_argument("--parent", type=int, default=None, help="the process whose end ends this one")
    args = ap.parse_args(argv)
    if args.parent is not None:
        _die_with(args.parent)
    torch.set_num_threads(1)
    model, _ = load_checkpoint(args.checkpoint)
    if args.frames:
        export_frame_scorer(model, args.out)
    else:
        export_window_scorer(model, args.out, args.published)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
