"""Camera frames scored in the scorer's passes equal each camera streamed alone and the full window ending at each
frame; a reset job starts a new sequence, even when it shares a pass with the old connection's frames."""

from __future__ import annotations

import pytest
import torch

from model.streaming import FrameStream, score_frames
from service.inference.frame_jobs import passes, score_frame_jobs
from service.inference.jobs import FrameJob

CUES = ("raw", "rec", "feat", "app", "motion", "speed", "dir", "mem", "grey")


class Sink:
    alive = True


@pytest.fixture(scope="module")
def model(checkpoint):
    from model import load_checkpoint

    return load_checkpoint(checkpoint)[0].eval()


def frames(model, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, model.cfg.in_channels, *model.cfg.hw, generator=g) * 2 - 1  # (n, C_in, H, W)


def jobs(stream, x, first=0, reset=False):
    return [FrameJob(Sink(), stream, f, first + i, 0.0, 0.0, reset=reset and i == 0) for i, f in enumerate(x)]


def alone(model, x):
    """One camera's frames scored one at a time with its own FrameStream: (n,) raw scores."""
    s = FrameStream(model)
    return torch.cat([score_frames(model, [(s, f[None])])[0].raw[0] for f in x])


def window_raw(model, x, t):
    """The raw score of the full window ending at frame t, every frame given its true past."""
    T, c = model.cfg.num_frames, model.context_frames
    idx = [max(0, j) for j in range(t - T + 1 - c, t + 1)]
    return model.score_detailed(x[idx][None], positions=slice(T - 1, T), context=c).raw[0, 0]


def test_cameras_in_one_pass_score_as_alone_and_as_their_windows(model):
    a, b = frames(model, 11, 0), frames(model, 11, 1)
    sa, sb = FrameStream(model), FrameStream(model)
    got = {id(sa): [], id(sb): []}
    for i in range(0, 11, 3):  # interleaved, unequal numbers of new frames per pass
        batch = jobs(sa, a[i:i + 3], i) + jobs(sb, b[i:i + 2], i) + jobs(sb, b[i + 2:i + 3], i + 2)
        for job, scores in zip(batch, score_frame_jobs(model, batch, heatmap=True, amp=False), strict=True):
            assert scores.indices == [job.index] and scores.maps.shape == (1, len(model.heat_cues), *model.cfg.hw)
            assert {k for k, v in scores.cues().items() if v is not None} <= set(CUES)
            got[id(job.stream)].append(scores.raw)
    for s, x in ((sa, a), (sb, b)):
        raw = torch.cat(got[id(s)])
        assert torch.allclose(raw, alone(model, x), atol=1e-4)
        with torch.no_grad():
            ref = torch.stack([window_raw(model, x, t) for t in range(len(x))])
        assert torch.allclose(raw, ref, atol=1e-4)


def test_a_reset_job_starts_a_new_sequence_within_a_pass(model):
    old, new = frames(model, 5, 2), frames(model, 4, 3)
    s = FrameStream(model)
    batch = jobs(s, old[:3]) + jobs(s, old[3:], 3) + jobs(s, new, 5, reset=True)
    assert [len(p) for p in passes(batch)] == [5, 4]  # the reset cannot share a score_frames() call
    raw = torch.cat([sc.raw for sc in score_frame_jobs(model, batch, heatmap=False, amp=False)])
    assert torch.allclose(raw[:5], alone(model, old), atol=1e-4)
    assert torch.allclose(raw[5:], alone(model, new), atol=1e-4)  # the old connection's frames are forgotten


def test_a_failed_pass_leaves_every_stream_in_it_to_start_anew(model):
    a = frames(model, 6, 4)
    s = FrameStream(model)
    score_frame_jobs(model, jobs(s, a[:3]), heatmap=False, amp=False)
    wrong = torch.zeros(1, model.cfg.in_channels, 8, 8)  # a frame of another size: the pass fails
    broken = jobs(s, a[3:4]) + jobs(FrameStream(model), wrong)
    with pytest.raises(RuntimeError):
        score_frame_jobs(model, broken, heatmap=False, amp=False)
    raw = torch.cat([sc.raw for sc in score_frame_jobs(model, jobs(s, a[4:], 4), heatmap=False, amp=False)])
    assert torch.allclose(raw, alone(model, a[4:]), atol=1e-4)
