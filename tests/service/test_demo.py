"""`ocrgan demo`: with no Redis, GPU, dataset or network, a looping camera is scored at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from service.demo import DEMO_CLIP
from service.settings import DEFAULT_CHECKPOINT
from tests.service.servers import free_port, loopback_only_env, wait_for

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


def test_demo_serves_live_scores(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRGAN_")}
    env |= {"XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_STATE_HOME": str(tmp_path / "state"),
            "OCRGAN_TORCH_THREADS": "1", **loopback_only_env()}
    proc = subprocess.Popen([sys.executable, "-m", "ocrgan_cli", "demo", "--port", str(port)], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            def scored():
                v = client.get("/streams/demo").json()
                return v["state"] == "running" and v["frames_scored"] >= 20 and v

            v = wait_for(scored, 60, what="the demo camera's scores")
            assert v["calibrate"] and client.get("/readyz").json()["backend"] == "embedded"
            assert client.get("/").status_code == 200
            assert client.get("/streams/demo/snapshot.jpg").content[:2] == b"\xff\xd8"
            # the built-in file camera is not persisted, and file URLs stay refused for everyone else
            r = client.post("/streams", json={"id": "mine", "url": f"file://{DEMO_CLIP}"})
            assert r.status_code == 422
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert f"open http://127.0.0.1:{port}/" in out
    if not DEFAULT_CHECKPOINT.is_file():
        assert "RANDOM-WEIGHT" in err
        assert (tmp_path / "cache" / "ocrgan" / "demo-random-weights.safetensors").is_file()
    registry = tmp_path / "state" / "ocrgan" / "demo-streams.json"
    assert not registry.exists() or '"demo"' not in registry.read_text()


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
