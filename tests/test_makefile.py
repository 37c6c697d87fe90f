"""The Makefile's set-up: `make demo` installs the service extra only, `make test` the dev extra, and each
stamp says which extra the venv holds, so switching between the two installs what is missing and no more."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def plan(venv: Path, target: str) -> list[str]:
    """The commands `make TARGET` would run with this venv (dry run: nothing is executed)."""
    return subprocess.run(["make", "-n", "-C", str(ROOT), f"VENV={venv}", target], capture_output=True, text=True,
                          check=True, timeout=30).stdout.splitlines()


def planned_installs(venv: Path, target: str) -> list[str]:
    """The extras `make TARGET` would pip-install into `venv`."""
    return [line.split('-e ".[', 1)[1].split("]", 1)[0] for line in plan(venv, target) if "pip install -q -e" in line]


def stamp(venv: Path, extra: str, fresh: bool = True) -> None:
    """Mark `extra` installed, after the last change of pyproject.toml (or before it: stale)."""
    path = venv / f".installed-{extra}"
    path.touch()
    edited = (ROOT / "pyproject.toml").stat().st_mtime
    os.utime(path, (edited + 60, edited + 60) if fresh else (edited - 60, edited - 60))


def test_demo_installs_the_service_extra_and_test_the_dev_extra(tmp_path):
    assert planned_installs(tmp_path, "demo") == ["service"]
    assert planned_installs(tmp_path, "test") == ["dev"]
    touched = [line.split()[1:] for line in plan(tmp_path, "test") if line.startswith("touch ")]
    assert touched == [[str(tmp_path / ".installed-dev"), str(tmp_path / ".installed-service")]]  # dev has both


def test_switching_from_demo_to_test_adds_the_dev_extra(tmp_path):
    stamp(tmp_path, "service")
    assert planned_installs(tmp_path, "demo") == []
    assert planned_installs(tmp_path, "test") == ["dev"]


def test_a_dev_install_serves_the_demo_too(tmp_path):
    stamp(tmp_path, "dev")
    stamp(tmp_path, "service")  # what installing the dev extra leaves behind
    assert planned_installs(tmp_path, "demo") == []
    assert planned_installs(tmp_path, "test") == []


def test_an_edited_pyproject_reinstalls(tmp_path):
    stamp(tmp_path, "dev", fresh=False)
    stamp(tmp_path, "service", fresh=False)
    assert planned_installs(tmp_path, "demo") == ["service"]
    assert planned_installs(tmp_path, "test") == ["dev"]
