"""Paths of the repository and the system tools the deployment tests run (installed by
scripts/system-deps.sh and the dev extra), plus small waiting and port helpers."""

from __future__ import annotations

import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_GPU = ROOT / "docker-compose.gpu.yml"
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile*"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

T = TypeVar("T")


def tool(name: str) -> str:
    """Absolute path of a required executable; a missing one fails the test (never skips it)."""
    venv_bin = Path(sys.executable).parent
    path = shutil.which(name, path=f"{venv_bin}:/usr/sbin:/usr/bin:/sbin:/bin") or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/system-deps.sh and pip install -e '.[dev]'")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll `check` until it returns something truthy; fail the test saying `what` never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
