"""Fixtures of the service tests: a small random-weight checkpoint, settings, live apps, Redis, RTSP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model import OCRGANConfig, OCRGANVideo, save_checkpoint
from service.api.app import create_app
from service.settings import Settings
from testkit.servers import LOOPBACK_ONLY, LiveApp, redis_server, rtsp_server
from testkit.synthetic import moving_shapes, write_video

TINY = dict(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny luma model with random weights (scores are meaningless, the plumbing is not)."""
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    model = OCRGANVideo(OCRGANConfig(**TINY))
    model.set_score_statistics(mean=0.5, std=0.1, threshold=3.0)
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="session")
def clip_frames() -> np.ndarray:
    frames, _ = moving_shapes(30, 64, 96, seed=3, anomaly_from=18)
    return frames


@pytest.fixture(scope="session")
def mp4_clip(tmp_path_factory, clip_frames) -> Path:
    return write_video(tmp_path_factory.mktemp("clips") / "clip.mp4", clip_frames)


@pytest.fixture
def make_settings(tmp_path, checkpoint):
    def make(**kw) -> Settings:
        base = dict(checkpoint=checkpoint, registry_path=tmp_path / "streams.json", device="cpu", torch_threads=1,
                    max_batch_wait_ms=5, watchdog_seconds=3, open_timeout_seconds=5,
                    reconnect_base_seconds=0.2, reconnect_cap_seconds=1.0, upload_dir=tmp_path,
                    onnx_cache=tmp_path / "onnx", runtime="torch", **LOOPBACK_ONLY)  # torch unless a test asks:
        # ONNX Runtime's background exports are tested on their own (tests/service/inference/test_onnx_runtime.py)
        base.update(kw)
        return Settings(_env_file=None, **base)

    return make


@pytest.fixture
def live(make_settings):
    """Factory: a running app over real HTTP; stopped at the end of the test."""
    apps: list[LiveApp] = []

    def start(settings: Settings | None = None, **kw) -> LiveApp:
        app = LiveApp(create_app(settings or make_settings(**kw)))
        apps.append(app)
        return app

    yield start
    for app in reversed(apps):
        app.stop()


@pytest.fixture
def rtsp(tmp_path):
    """Factory: a loopback RTSP server (restartable on its port); killed at the end of the test."""
    servers = []

    def start(**kw):
        server = rtsp_server(tmp_path, **kw)
        server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.kill()


@pytest.fixture
def redis(tmp_path):
    """A private redis-server on a free port (killable for fault tests)."""
    server = redis_server(tmp_path)
    server.start()
    yield server
    server.kill()
