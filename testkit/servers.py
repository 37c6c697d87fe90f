"""Real servers for the service tests and benchmarks: the app under uvicorn (in a thread, or as a subprocess),
Redis and a loopback RTSP server (gst-rtsp-server under the system python), each stoppable and restartable."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"
# The camera URL policy of every service a test or benchmark starts: loopback hosts only, so no URL it is
# given (a schema's example, a fuzzed one, a typo) is ever connected to beyond this machine.
LOOPBACK_ONLY = {"allow_loopback": True, "allow_private_addresses": False, "allow_public_addresses": False,
                 "allow_link_local": False}


# a camera that is never there: port 9 (discard) on loopback, where nothing listens
NOWHERE = "rtsp://127.0.0.1:9/x"


def loopback_only_env() -> dict[str, str]:
    """LOOPBACK_ONLY as the OCRGAN_* environment of an `ocrgan serve` process."""
    return {f"OCRGAN_{k.upper()}": str(v).lower() for k, v in LOOPBACK_ONLY.items()}


def require_loopback_only(settings) -> None:
    """Refuse to start a test service whose URL policy lets cameras beyond loopback through."""
    wider = [k for k, v in LOOPBACK_ONLY.items() if k != "allow_loopback" and getattr(settings, k) != v]
    if wider:
        raise AssertionError(f"a test service must allow loopback cameras only; {wider} would let others through")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll until check() returns something truthy; returns it, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # the thing polled may not be up yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})"
                                                                               if last_error else ""))


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LiveApp:
    """The app under a real uvicorn server in a background thread, on a free port."""

    def __init__(self, app) -> None:
        require_loopback_only(app.state.settings)
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, name="uvicorn-test", daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), 30, what="uvicorn start-up")
        if not self.server.started:
            raise RuntimeError("the app failed to start")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _run(self) -> None:
        try:
            self.server.run()
        except SystemExit as e:  # uvicorn's way to report a failed start-up
            self.exit_code = e.code

    @property
    def services(self):
        return self.app.state.services

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


class AppProcess:
    """`ocrgan serve` as a subprocess (a replica that can be killed outright); with `trace_connects`, run
    under strace, which writes every connect() the service makes to that file."""

    def __init__(self, env: dict[str, str], log: Path, trace_connects: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full = {**os.environ, **env, **loopback_only_env(), "OCRGAN_PORT": str(self.port), "OCRGAN_HOST": "127.0.0.1"}
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        argv = [sys.executable, "-m", "ocrgan_cli", "serve"]
        if trace_connects is not None:
            from testkit.connect_trace import traced

            argv = traced(argv, trace_connects)
        self.proc = subprocess.Popen(argv, env=full, stdout=self._out, stderr=subprocess.STDOUT,
                                     cwd=HERE.parent)
        self.pid = self.proc.pid if trace_connects is None else self._child_of(self.proc.pid)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        wait_for(lambda: self.proc.poll() is not None or self._ready(), 60, what="ocrgan serve start-up")
        if self.proc.poll() is not None:
            raise RuntimeError(f"ocrgan serve exited: {log.read_text()[-2000:]}")

    @staticmethod
    def _child_of(pid: int) -> int:
        """The service started by the tracer `pid`."""
        import psutil

        return wait_for(lambda: [c.pid for c in psutil.Process(pid).children()], 10, what="the traced service")[0]

    def _ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return self.client.get("/healthz").status_code == 200
        return False

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, leases are left to expire."""
        if self.proc.poll() is None:
            self._signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.client.close()
        self._out.close()


class ManagedProcess:
    """A server process on a fixed port that can be killed and started again on the same port."""

    def __init__(self, argv: list[str], port: int, ready: Callable[[], bool], log: Path) -> None:
        self.argv, self.port, self.ready, self.log = argv, port, ready, log
        self.proc: subprocess.Popen | None = None
        self._out = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        self._out = open(self.log, "ab")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(self.argv, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            wait_for(lambda: self.proc.poll() is not None or self.ready(), timeout, what=self.argv[0])
        except AssertionError:
            self.kill()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.argv[0]} exited: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self._out is not None:
            self._out.close()
            self._out = None
        wait_for(lambda: not _port_open(self.port), 10, what=f"port {self.port} to close")

    def restart(self) -> None:
        self.kill()
        self.start()


def redis_server(tmp: Path, persist: bool = False) -> ManagedProcess:
    """A private redis-server; `persist` keeps its data across a restart (append-only file)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (scripts/system-deps.sh)")
    port = free_port()
    aof = ["--appendonly", "yes", "--appendfsync", "always"] if persist else ["--appendonly", "no"]
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *aof, "--dir", str(tmp)]
    return ManagedProcess(argv, port, lambda: _port_open(port), tmp / "redis.log")


def rtsp_server(tmp: Path, mounts: str = "cam", size: str = "96x64", fps: int = 10,
                tls: tuple[Path, Path] | None = None) -> ManagedProcess:
    """The loopback RTSP server; rtsp://127.0.0.1:<port>/<mount> for each mount, or rtsps:// with `tls` (the PEM
    files of its certificate and key)."""
    if not Path(SYSTEM_PYTHON).exists():
        raise RuntimeError("the system python with python3-gi is needed (scripts/system-deps.sh)")
    port = free_port()
    argv = [SYSTEM_PYTHON, str(HERE / "rtsp_server.py"), str(port), "--mounts", mounts, "--size", size,
            "--fps", str(fps), *(["--tls", ",".join(map(str, tls))] if tls else [])]
    return ManagedProcess(argv, port, lambda: _port_open(port), tmp / "rtsp.log")
