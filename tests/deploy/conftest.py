"""Session fixtures of the deployment tests: a real Redis and the real service on loopback with a
small random-weights checkpoint and one camera (a looping file source) being scored, so every
per-camera metric the dashboard and the alerts read has live series."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.running_service import Redis, Service, start_redis, start_service
from tests.deploy.tools import tool, wait_for

CAMERA = "gate"


def make_clip(path: Path, seconds: float, fps: int = 10) -> Path:
    """An H.264 clip of moving test pattern (what a camera might send), made by the real ffmpeg."""
    subprocess.run([tool("ffmpeg"), "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"testsrc2=size=160x120:rate={fps}", "-t", str(seconds),
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path


@pytest.fixture(scope="session")
def deploy_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="session")
def clip(deploy_tmp: Path) -> Path:
    return make_clip(deploy_tmp / "clip.mp4", seconds=4)


@pytest.fixture(scope="session")
def checkpoint(deploy_tmp: Path) -> Path:
    from model import OCRGANConfig, OCRGANVideo, save_checkpoint

    path = deploy_tmp / "random.safetensors"
    cfg = OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4)
    save_checkpoint(OCRGANVideo(cfg), path)
    return path


@pytest.fixture(scope="session")
def redis_server(deploy_tmp: Path) -> Iterator[Redis]:
    server = start_redis(deploy_tmp / "redis", "--save", "", "--appendonly", "no")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def service(deploy_tmp: Path, checkpoint: Path, redis_server: Redis, clip: Path) -> Iterator[Service]:
    """The service with camera CAMERA registered and already scored at least once."""
    svc = start_service(deploy_tmp / "service", checkpoint, redis_server.url, secrets.token_urlsafe(16),
                        allow_file_sources="true")
    try:
        status, body = svc.post("/streams", {"id": CAMERA, "url": str(clip), "fps": 10})
        assert status == 201, f"POST /streams: {status} {body!r}\n{svc.log_tail()}"

        def scored() -> bool:
            status, body = svc.get(f"/streams/{CAMERA}")
            return status == 200 and json.loads(body)["frames_scored"] > 0

        wait_for(scored, 60, f"camera {CAMERA!r} to get its first scores")
        yield svc
    finally:
        svc.stop()
