"""Camera frames scored one by one from cached per-frame features (model.streaming): every camera of a pass
sends its new frames, in order, as one item of one score_frames() call (or, in ONNX Runtime, its own runs), each
with its own FrameStream, which only the scorer thread touches. Each frame's scores come back as a one-frame
WindowScores, so a camera's sink and its StreamScoring take them as they take a window's."""

from __future__ import annotations

from collections.abc import Callable

import torch

from model import OCRGANVideo, WindowScores
from model.ocrgan import Scored
from model.streaming import FrameStream, score_frames
from model.windows import autocast
from service.inference.jobs import FrameJob

FrameRun = Callable[[FrameStream, torch.Tensor, bool], Scored]  # one stream's frames (n, C_in, H, W), scored another
# way than score_frames (ONNX Runtime's FrameRunner), with heatmaps or not


def score_frame_jobs(model: OCRGANVideo, jobs: list[FrameJob], heatmap: bool, amp: bool,
                     run: FrameRun | None = None) -> list[WindowScores]:
    """Each job's scores, in job order; `run(stream, frames, heatmap)`, when given, scores each stream's frames in
    place of score_frames (ONNX Runtime's FrameRunner). On a failure every stream of the pass forgets its past (its
    cache may hold frames that were never scored), so the camera's next frame starts a new sequence, and the error is
    raised."""
    device = next(model.parameters()).device
    out: dict[int, WindowScores] = {}
    try:
        with autocast(device, amp):
            for part in passes(jobs):
                out.update(_score_pass(model, part, heatmap, run))
    except Exception:
        for job in jobs:
            job.stream.reset()
        raise
    return [out[id(j)] for j in jobs]


def passes(jobs: list[FrameJob]) -> list[list[FrameJob]]:
    """Consecutive runs of the jobs in which a reset job is the first of its stream (a reset cannot happen within
    a score_frames() call); one run unless a camera reconnected while its frames were queued."""
    runs: list[list[FrameJob]] = [[]]
    seen: set[int] = set()
    for job in jobs:
        if job.reset and id(job.stream) in seen:
            runs.append([])
            seen = set()
        runs[-1].append(job)
        seen.add(id(job.stream))
    return [r for r in runs if r]


def _score_pass(model: OCRGANVideo, jobs: list[FrameJob], heatmap: bool,
                run: FrameRun | None) -> dict[int, WindowScores]:
    """Each stream's frames of `jobs`, in order: as the items of one score_frames() call, or by `run` per stream, in
    runs of consecutive jobs that ask for a heatmap or do not; keyed by id(job)."""
    groups: dict[int, list[FrameJob]] = {}
    for job in jobs:
        groups.setdefault(id(job.stream), []).append(job)
    for group in groups.values():
        if group[0].reset:
            group[0].stream.reset()
    if run is None:
        parts = list(groups.values())
        scored = score_frames(model, [(g[0].stream, torch.stack([j.inputs for j in g])) for g in parts], heatmap)
    else:
        parts = [part for g in groups.values() for part in _heatmap_runs(g)]
        scored = [run(p[0].stream, torch.stack([j.inputs for j in p]), p[0].heatmap) for p in parts]
    out = {}
    for part, s in zip(parts, scored, strict=True):
        for k, job in enumerate(part):
            out[id(job)] = WindowScores.from_scored(s, [job.index], k)
    return out


def _heatmap_runs(group: list[FrameJob]) -> list[list[FrameJob]]:
    """One stream's jobs in runs of consecutive jobs with the same heatmap wish."""
    runs: list[list[FrameJob]] = []
    for job in group:
        if runs and runs[-1][0].heatmap == job.heatmap:
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs
