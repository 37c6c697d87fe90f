"""Camera frames scored one by one from cached per-frame features (model.streaming): every camera of a pass
sends its new frames, in order, as one item of one score_frames() call, each with its own FrameStream, which
only the scorer thread touches. Each frame's scores come back as a one-frame WindowScores, so a camera's sink
and its StreamScoring take them as they take a window's."""

from __future__ import annotations

import torch

from model import OCRGANVideo, WindowScores
from model.streaming import score_frames
from model.windows import autocast
from service.inference.jobs import FrameJob


def score_frame_jobs(model: OCRGANVideo, jobs: list[FrameJob], heatmap: bool, amp: bool) -> list[WindowScores]:
    """Each job's scores, in job order. On a failure every stream of the pass forgets its past (its cache may hold
    frames that were never scored), so the camera's next frame starts a new sequence, and the error is raised."""
    device = next(model.parameters()).device
    out: dict[int, WindowScores] = {}
    try:
        with autocast(device, amp):
            for part in passes(jobs):
                out.update(_score_pass(model, part, heatmap))
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


def _score_pass(model: OCRGANVideo, jobs: list[FrameJob], heatmap: bool) -> dict[int, WindowScores]:
    """One score_frames() call: each stream's frames of `jobs`, in order, as one item; keyed by id(job)."""
    groups: dict[int, list[FrameJob]] = {}
    for job in jobs:
        groups.setdefault(id(job.stream), []).append(job)
    for group in groups.values():
        if group[0].reset:
            group[0].stream.reset()
    items = [(g[0].stream, torch.stack([j.inputs for j in g])) for g in groups.values()]  # (n_i, C_in, H, W) each
    scored = score_frames(model, items, heatmap)
    out = {}
    for group, s in zip(groups.values(), scored, strict=True):
        for k, job in enumerate(group):
            out[id(job)] = WindowScores.from_scored(s, [job.index], k)
    return out
