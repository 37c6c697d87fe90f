"""The real `ocrgan` command in a subprocess, as a user runs it: a clean environment, no .env, state and cache
folders of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_TORCH = "torch was imported before the mistake was answered"


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


def without_torch(env: dict[str, str], where: Path) -> dict[str, str]:
    """`env` with a `torch` package first on the path that fails on import: a mistake answered under it was
    answered before torch or a model loaded, however busy the machine (a time limit is not: 10.2 s was seen under
    load)."""
    fake = where / "no-torch" / "torch"
    fake.mkdir(parents=True, exist_ok=True)
    (fake / "__init__.py").write_text(f"raise ImportError({NO_TORCH!r})\n")
    return env | {"PYTHONPATH": os.pathsep.join([str(fake.parent), env["PYTHONPATH"]])}


def refusal(args: list[str], cwd: Path, env: dict[str, str] | None = None, torch_free: bool = True) -> str:
    """The one line `ocrgan ARGS` answers a mistake with: on stderr, exit status 2, no traceback; without
    importing torch unless `torch_free` is False (a config is checked against the model's own, which loads it)."""
    env = env or ocrgan_env(cwd)
    proc, _ = run_ocrgan(args, cwd, without_torch(env, cwd) if torch_free else env, timeout=60)
    assert NO_TORCH not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]
