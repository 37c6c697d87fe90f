"""docker/healthcheck.py, the probe the images' HEALTHCHECK and the compose healthcheck run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.deploy.running_service import Service
from tests.deploy.tools import ROOT, free_port

PROBE = ROOT / "docker" / "healthcheck.py"


def probe(port: int, *path: str) -> int:
    env = {**os.environ, "OCRGAN_PORT": str(port)}
    return subprocess.run([sys.executable, str(PROBE), *path], env=env, timeout=30).returncode


@pytest.mark.slow
def test_healthy_and_ready_service_passes(service: Service) -> None:
    assert probe(service.port) == 0  # /healthz, the image's HEALTHCHECK
    assert probe(service.port, "/readyz") == 0  # the compose healthcheck


@pytest.mark.slow
def test_an_error_status_fails(service: Service) -> None:
    assert probe(service.port, "/no-such-route") == 1


def test_nothing_listening_fails() -> None:
    assert probe(free_port()) == 1
