"""The compose files as Docker Compose resolves them, through the real `docker-compose config`
(Debian's docker-compose validates the files against the compose schema without an engine)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import ROOT, tool

# Variables the compose files read; cleared so the defaults written in the files are what is checked.
COMPOSE_VARIABLES = ("OCRGAN_ENV_FILE", "OCRGAN_PUBLISH", "OCRGAN_CHECKPOINTS_DIR", "PROMETHEUS_PUBLISH",
                     "GRAFANA_PUBLISH", "GRAFANA_ADMIN_PASSWORD", "COMPOSE_FILE", "COMPOSE_PROFILES",
                     "COMPOSE_PROJECT_NAME")


def run_config(*files: Path, quiet: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARIABLES}
    args = [tool("docker-compose"), "--project-directory", str(ROOT)]
    for f in files:
        args += ["-f", str(f)]
    args += ["config", "-q"] if quiet else ["config"]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def resolved(*files: Path) -> dict[str, Any]:
    out = run_config(*files)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (named volumes left out)."""
    result = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            if v.get("type") == "bind":
                result.append((v["source"], v["target"]))
            continue
        source, target = v.split(":")[:2]
        if source.startswith(("/", ".")):
            result.append((source, target))
    return result
