"""The real `ocrgan` command in a subprocess, as a user runs it: a clean environment, no .env, state and cache
folders of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MISTAKE_SECONDS = 10  # a user's mistake is answered well within this, before torch or the model loads


def ocrgan_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This checkout's code (whatever packages it has), no OCRGAN_* settings, state and cache under `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRGAN_")}
    return env | {"PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache"),
                  "XDG_STATE_HOME": str(tmp_path / "state"), **extra}


def run_ocrgan(args: list[str], cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    """The finished process and the seconds it took."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ocrgan_cli", *args], cwd=cwd, env=env or ocrgan_env(cwd),
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0


def refusal(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """The one line `ocrgan ARGS` answers a mistake with: on stderr, exit status 2, no traceback, within
    MISTAKE_SECONDS."""
    proc, seconds = run_ocrgan(args, cwd, env, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert seconds < MISTAKE_SECONDS, f"took {seconds:.1f} s"
    return lines[0]
