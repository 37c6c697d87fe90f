"""`ocrgan demo`: with no Redis, GPU, dataset or network, a looping camera is scored at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.demo import DEMO_CLIP
from service.settings import DEFAULT_CHECKPOINT
from testkit.servers import free_port, loopback_only_env, wait_for
from tests.command import ocrgan_env

pytestmark = pytest.mark.slow


def test_demo_clip_is_small_and_loops_at_25fps():
    import av

    assert DEMO_CLIP.stat().st_size < 2_000_000
    with av.open(str(DEMO_CLIP)) as c:
        s = c.streams.video[0]
        assert float(s.average_rate) == 25 and s.frames >= 250


def test_demo_clip_is_normal_for_its_first_18_seconds():
    """Calibration (100 frames at 10 fps) must see only normal frames, with seconds to spare: the bright
    anomalous objects (a vehicle, a runner; walkers are darker) appear from 18 s and both appear."""
    import av
    import numpy as np

    with av.open(str(DEMO_CLIP)) as c:
        bright = np.array([(f.to_ndarray(format="gray") > 232).sum() for f in c.decode(video=0)])
    anomalous = np.nonzero(bright > 40)[0] / 25.0
    assert anomalous.min() >= 18.0
    assert (anomalous < 22).any() and (anomalous > 24).any()  # the two anomalies of a loop


def seed_registry(tmp_path) -> Path:
    """The demo's registry as an earlier run left it: one camera added by the user."""
    registry = tmp_path / "state" / "ocrgan" / "demo-streams.json"
    registry.parent.mkdir(parents=True)
    spec = {"id": "door", "url": "rtsp://127.0.0.1:9/door", "fps": None, "stride": None, "calibrate": True}
    registry.write_text(json.dumps({"version": 1, "streams": {"door": spec}}))
    return registry


def start_demo(tmp_path, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = ocrgan_env(tmp_path, OCRGAN_TORCH_THREADS="1", **loopback_only_env())
    proc = subprocess.Popen([sys.executable, "-m", "ocrgan_cli", "demo", "--port", str(port), *args], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    return out, err


def test_demo_serves_live_scores(tmp_path):
    """...and brings back the cameras of earlier demo runs, naming them and where they are kept."""
    registry = seed_registry(tmp_path)
    proc, port = start_demo(tmp_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            def scored():
                v = client.get("/streams/demo").json()
                return v["state"] == "running" and v["frames_scored"] >= 20 and v

            v = wait_for(scored, 60, what="the demo camera's scores")
            assert v["calibrate"] and client.get("/readyz").json()["backend"] == "embedded"
            assert client.get("/").status_code == 200
            assert client.get("/streams/demo/snapshot.jpg").content[:2] == b"\xff\xd8"
            assert sorted(s["id"] for s in client.get("/streams").json()["streams"]) == ["demo", "door"]
            # the built-in file camera is not persisted, and file URLs stay refused for everyone else
            r = client.post("/streams", json={"id": "mine", "url": f"file://{DEMO_CLIP}"})
            assert r.status_code == 422
    finally:
        out, err = stop(proc)
    assert f"open http://127.0.0.1:{port}/" in out
    assert (f"ocrgan demo: restoring 1 camera(s) added in earlier demo runs: door (kept in {registry}; "
            "`ocrgan demo --fresh` starts without them)") in out.splitlines()
    if not DEFAULT_CHECKPOINT.is_file():
        assert "RANDOM-WEIGHT" in err
        assert (tmp_path / "cache" / "ocrgan" / "demo-random-weights.safetensors").is_file()
    assert '"door"' in registry.read_text() and '"demo"' not in registry.read_text()


def test_demo_fresh_starts_with_the_demo_camera_only(tmp_path):
    registry = seed_registry(tmp_path)
    proc, port = start_demo(tmp_path, "--fresh")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            streams = wait_for(lambda: client.get("/streams").json()["streams"], 60, what="the demo camera")
            assert [s["id"] for s in streams] == ["demo"]
    finally:
        out, _ = stop(proc)
    assert f"ocrgan demo: --fresh: forgot the cameras of earlier demo runs (door); deleted {registry}" in out
    assert not registry.exists()


def test_the_shipped_model_flags_the_demo_clips_anomalies_and_little_else():
    """Calibrated on the demo clip's first 10 s, the shipped checkpoint flags at most 5% of the normal frames from
    10 s to 18 s, and frames of each staged anomaly: the vehicle from 18.5 s and the runner from 25 s."""
    out = subprocess.run([sys.executable, "-m", "ocrgan_cli", "score", str(DEMO_CLIP), "--calibrate-seconds", "10",
                          "--json"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OCRGAN_TORCH_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    frames = json.loads(out.stdout)["frames"]

    def flagged(start: float, end: float) -> list[bool]:
        return [f["anomaly"] for f in frames if start <= f["timestamp"] < end]

    normal = flagged(10.0, 18.0)
    assert len(normal) == 200 and sum(normal) <= 0.05 * len(normal), sum(normal)
    assert any(flagged(18.5, 20.5)) and any(flagged(25.0, 26.5))
