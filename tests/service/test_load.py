"""Load and soak: 8 RTSP cameras at 25 fps on the loopback server, clips uploaded without pause by two
clients, a WebSocket reader and a WebSocket client that never reads, against `ocrgan serve` in its
own process. After the warm-up, memory, threads and file descriptors stay flat, frames the scorer
cannot take are dropped and counted (its queue stays bounded), nothing fails and nothing is logged
as an error. The short run is in the default suite; the 10-minute soak runs with `-m soak`
(scripts/soak.py runs any length)."""

from __future__ import annotations

import pytest

from model.checkpoint import read_header
from service.settings import DEFAULT_CHECKPOINT, Settings
from tests.service.load_run import LoadConfig, LoadReport, run_load

RSS_GROWTH_MB = 32  # start to end of the measured period
RSS_SPIKE_MB = 200  # start to the highest sample
# Threads come and go with the load: each upload being decoded holds FFmpeg's decoder threads, and anyio's
# worker threads retire after 10 s idle. Bounded: per uploader (decoder threads + a worker) plus slack.
# A leak shows as growth of the floor that the transient threads come and go above: the fewest threads in the
# last third of the run may not exceed the fewest in the first third by more than THREAD_GROWTH.
THREADS_PER_UPLOAD = 6
THREAD_GROWTH = 3
FD_SPREAD = 16
MAX_PENDING = Settings.model_fields["max_pending_windows"].default


def check(report: LoadReport, cfg: LoadConfig) -> None:
    stride = read_header(cfg.checkpoint)["config"]["stride"]
    print("\n" + "\n".join(report.lines()))
    assert report.uploads_failed == [] and report.uploads_ok > 0
    assert report.log_errors == []
    assert set(report.states.values()) == {"running"}
    assert report.scored > 0 and report.ws_messages > report.scored
    start, end, peak = report.rss_mb
    assert end - start <= RSS_GROWTH_MB and peak - start <= RSS_SPIKE_MB, report.rss_mb
    assert report.threads[1] - report.threads[0] <= cfg.uploaders * THREADS_PER_UPLOAD + 4, report.threads
    assert report.thread_floors[1] - report.thread_floors[0] <= THREAD_GROWTH, report.thread_floors
    assert report.fds[1] - report.fds[0] <= FD_SPREAD, report.fds
    # dropped frames are counted, never queued: the scorer holds at most MAX_PENDING windows per camera,
    # and every accepted frame is scored, dropped, or waiting for its window
    assert report.queue_max <= cfg.cameras * MAX_PENDING
    assert report.unaccounted <= cfg.cameras * stride * (1 + MAX_PENDING)


@pytest.mark.slow
def test_load(checkpoint, mp4_clip, tmp_path):
    cfg = LoadConfig(checkpoint, mp4_clip, cameras=8, seconds=50, warmup=10, env={"OCRGAN_TORCH_THREADS": "1"})
    check(run_load(cfg, tmp_path), cfg)


@pytest.mark.soak
def test_soak_10_minutes(checkpoint, mp4_clip, tmp_path):
    """The shipped checkpoint when present; cameras sampled at the service's default 10 fps."""
    shipped = DEFAULT_CHECKPOINT.is_file()
    cfg = LoadConfig(DEFAULT_CHECKPOINT if shipped else checkpoint, mp4_clip, cameras=8, sample_fps=10,
                     seconds=600, warmup=30)
    check(run_load(cfg, tmp_path), cfg)
