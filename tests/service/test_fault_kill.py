"""`ocrgan serve` killed with SIGKILL (mid-registration) and started again: every camera whose
registration was acknowledged is back, the registry file is whole, and the cameras resume scoring."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from testkit.servers import NOWHERE, AppProcess, wait_for

pytestmark = pytest.mark.slow


def test_sigkill_and_restart(rtsp, checkpoint, tmp_path):
    server = rtsp(mounts="a,b")
    env = {"OCRGAN_CHECKPOINT": str(checkpoint), "OCRGAN_ALLOW_LOOPBACK": "true", "OCRGAN_DEVICE": "cpu",
           "OCRGAN_TORCH_THREADS": "1", "OCRGAN_REGISTRY_PATH": str(tmp_path / "state" / "streams.json"),
           "OCRGAN_OPEN_TIMEOUT_SECONDS": "2"}
    first = AppProcess(env, tmp_path / "first.log")
    for cam in ("a", "b"):
        assert first.client.post("/streams", json={"id": cam, "url": f"rtsp://127.0.0.1:{server.port}/{cam}",
                                                   "fps": 5}).status_code == 201
    wait_for(lambda: all(v.get("frames_scored", 0) > 4 for v in first.client.get("/streams").json()["streams"]),
             30, what="both cameras scoring")
    acknowledged: list[str] = []
    stop = threading.Event()

    def register() -> None:  # registrations in flight when the kill comes
        with httpx.Client(base_url=first.url, timeout=5) as client:
            for i in range(40):
                if stop.is_set():
                    return
                try:
                    r = client.post("/streams", json={"id": f"x{i}", "url": f"{NOWHERE}{i}"})
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acknowledged.append(f"x{i}")

    writer = threading.Thread(target=register)
    writer.start()
    wait_for(lambda: len(acknowledged) >= 3, 10, what="some registrations")
    first.kill()
    stop.set()
    writer.join(10)
    first.stop()

    t0 = time.monotonic()
    second = AppProcess(env, tmp_path / "second.log")
    try:
        ids = {v["id"] for v in second.client.get("/streams").json()["streams"]}
        assert {"a", "b", *acknowledged} <= ids
        wait_for(lambda: all(second.client.get(f"/streams/{cam}").json().get("frames_scored", 0) > 4
                             for cam in ("a", "b")), 30, what="the cameras scoring again")
        print(f"\n{len(acknowledged)} registrations acknowledged before the kill, {len(ids) - 2} found after; "
              f"cameras scoring {time.monotonic() - t0:.1f}s after the restart began")
    finally:
        second.stop()
    assert "unreadable" not in second.log.read_text()
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["streams.json"]  # no temp file left behind
