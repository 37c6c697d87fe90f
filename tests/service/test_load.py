"""Load and soak: 8 RTSP cameras at 25 fps on the loopback server, clips uploaded without pause by two
clients, a WebSocket reader and a WebSocket client that never reads, against `ocrgan serve` in its
own process. After the warm-up, memory, threads and file descriptors stay flat, frames the scorer
cannot take are dropped and counted (its queue stays bounded), nothing fails and nothing is logged
as an error. The short run is in the default suite; the 10-minute soak runs with `-m soak`
(scripts/soak.py runs any length)."""

from __future__ import annotations

import pytest

from service.settings import DEFAULT_CHECKPOINT
from testkit.load_run import LoadConfig, check, run_load


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
