"""The demo camera's two scripts, run for real: the publisher loops a clip into an RTSP server,
and the registration script adds a camera to the running service exactly once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import make_clip
from tests.deploy.running_service import Service
from tests.deploy.tools import DEPLOY, free_port, tool

pytestmark = pytest.mark.slow
REGISTER = DEPLOY / "register_stream.py"


def test_publisher_loops_the_clip_into_an_rtsp_server(tmp_path: Path) -> None:
    """ffmpeg in RTSP listen mode stands in for the RTSP server: it accepts the publisher's
    ANNOUNCE/RECORD as mediamtx does. A 1 s clip delivering 25 frames proves the loop."""
    clip = make_clip(tmp_path / "short.mp4", seconds=1)
    url = f"rtsp://127.0.0.1:{free_port()}/demo"
    receiver = subprocess.Popen([tool("ffmpeg"), "-hide_banner", "-nostdin", "-rtsp_flags", "listen", "-i", url,
                                 "-frames:v", "25", "-f", "null", "-"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # the receiver needs to be listening before the publisher connects
    env = {**os.environ, "DEMO_CLIP": str(clip), "DEMO_RTSP_URL": url,
           "PATH": f"{Path(tool('ffmpeg')).parent}:{os.environ.get('PATH', '')}"}
    publisher = subprocess.Popen(["sh", str(DEPLOY / "demo" / "publish.sh")], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, log = receiver.communicate(timeout=30)
    finally:
        publisher.kill()
        publisher.wait()
        receiver.kill()
    assert receiver.returncode == 0, log[-2000:]
    assert re.search(r"Stream #0:0.*Video: h264", log), log[-2000:]
    assert re.search(r"frame=\s*25\b", log), log[-2000:]


def _register(service: Service, *args: str, key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRGAN_")}
    env.update(OCRGAN_SERVICE_URL=service.url, OCRGAN_API_KEY=service.api_key if key is None else key)
    return subprocess.run([sys.executable, str(REGISTER), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_registration_adds_the_camera_once(service: Service, clip: Path) -> None:
    camera = ["--id", "demo", "--url", str(clip), "--fps", "5", "--calibrate", "--wait", "20"]
    try:
        first = _register(service, *camera)
        assert first.returncode == 0, first.stderr
        assert "registered" in first.stdout
        view = service.get_json("/streams/demo")
        assert view["fps"] == 5.0 and view["calibrate"] is True
        again = _register(service, *camera)  # the container restarting, or the stack brought up again
        assert again.returncode == 0 and "already registered" in again.stdout, again.stdout + again.stderr
    finally:
        service.delete("/streams/demo")


def test_registration_fails_loudly_with_a_wrong_api_key(service: Service, clip: Path) -> None:
    out = _register(service, "--id", "intruder", "--url", str(clip), "--wait", "20", key="wrong")
    assert out.returncode == 1
    assert "403" in out.stderr
    assert service.get("/streams/intruder")[0] == 404


def test_registration_gives_up_when_the_service_never_gets_ready() -> None:
    env = {**os.environ, "OCRGAN_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(REGISTER), "--id", "x", "--url", "rtsp://cam/x", "--wait", "2"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "not ready" in out.stderr
    assert time.monotonic() - t0 < 15


def test_demo_camera_wiring_matches_the_scripts() -> None:
    """The compose services feed the scripts the variables they read."""
    from tests.deploy.compose import resolved
    from tests.deploy.tools import COMPOSE

    s = resolved(COMPOSE)["services"]
    publisher, register = s["demo-publisher"], s["demo-register"]
    script = (DEPLOY / "demo" / "publish.sh").read_text()
    for var in ("DEMO_CLIP", "DEMO_RTSP_URL"):
        assert f"${{{var}" in script and var in publisher["environment"]
    assert publisher["environment"]["DEMO_RTSP_URL"] == register["environment"]["STREAM_URL"]
    reads = REGISTER.read_text()
    ours = [v for v in register["environment"] if v.startswith("STREAM_") or v == "OCRGAN_SERVICE_URL"]
    assert len(ours) == 5, ours  # the rest comes from the service's env file (for OCRGAN_API_KEY)
    for var in ours:
        assert f'env("{var}"' in reads, f"register_stream.py does not read {var}"
    assert register["environment"]["STREAM_URL"].startswith("rtsp://mediamtx:8554/")
    assert register["environment"]["OCRGAN_SERVICE_URL"] == "http://ocrgan:8000"
