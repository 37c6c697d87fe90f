"""The real service (`ocrgan serve`) and a real Redis as subprocesses on loopback, configured the
way docker-compose.yml configures the container: Redis backend, an API key, port from OCRGAN_PORT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.servers import loopback_only_env
from tests.deploy.tools import free_port, tool, wait_for


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Redis:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        _stop(self.proc)


def start_redis(workdir: Path, *args: str) -> Redis:
    """redis-server on a free loopback port, its files in `workdir`; `args` go before ours."""
    import redis

    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen([tool("redis-server"), *args, "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(workdir), "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.5)

    def pong() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_for(pong, 20, "redis-server to answer PING")
    return Redis(proc, port)


@dataclass
class Service:
    proc: subprocess.Popen
    port: int
    api_key: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, bytes]:
        return http("GET", self.url + path)

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, f"GET {path}: {status} {body[:300]!r}\n{self.log_tail()}"
        return json.loads(body)

    def post(self, path: str, body: dict, key: str | None = None) -> tuple[int, bytes]:
        return http("POST", self.url + path, body, {"X-API-Key": key if key is not None else self.api_key})

    def delete(self, path: str) -> tuple[int, bytes]:
        return http("DELETE", self.url + path, headers={"X-API-Key": self.api_key})

    def log_tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "service log:\n" + "\n".join(lines[-n:])

    def stop(self) -> None:
        _stop(self.proc)


def start_service(workdir: Path, checkpoint: Path, redis_url: str, api_key: str, **settings: str) -> Service:
    """`ocrgan serve` with a clean OCRGAN_* environment; the working directory holds no .env."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRGAN_")}
    env.update({
        "OCRGAN_CHECKPOINT": str(checkpoint),
        "OCRGAN_REDIS_URL": redis_url,
        "OCRGAN_REDIS_PREFIX": f"ocrgan-deploy-{port}",
        "OCRGAN_API_KEY": api_key,
        "OCRGAN_HOST": "127.0.0.1",
        "OCRGAN_PORT": str(port),
        "OCRGAN_TORCH_THREADS": "1",
        "OCRGAN_RUNTIME": "torch",  # no background export beside these tests (test_onnx_runtime.py has those)
        "XDG_STATE_HOME": str(workdir / "state"),
        **{f"OCRGAN_{k.upper()}": v for k, v in settings.items()},
        **loopback_only_env(),
    })
    log = workdir / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ocrgan_cli", "serve"], cwd=workdir, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    svc = Service(proc, port, api_key, log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"ocrgan serve exited with {proc.returncode}\n{svc.log_tail()}")
        return svc.get("/readyz")[0] == 200

    try:
        wait_for(ready, 90, "the service's /readyz")
    except BaseException as e:
        svc.stop()
        raise AssertionError(f"{e}\n{svc.log_tail()}") from None
    return svc
