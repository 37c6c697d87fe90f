#!/usr/bin/env python3
"""Build the CPU image with podman from a local Debian base, start it, and check that it works.

Needs root, podman, runc and debootstrap (Debian: apt-get install podman runc debootstrap); no Docker
engine and no registry. The only outside connections are package downloads while building (the Debian
mirror and the Python package indexes); the checks talk to the containers over loopback only:

  1. the service image as shipped (embedded backend) turns healthy by its own HEALTHCHECK, and answers
     GET /healthz and /readyz;
  2. POST /score scores service/assets/demo.mp4;
  3. in a pod with Redis (Debian's redis-server, on the same base), the Redis backend registers a
     camera (the demo clip inside the image, as a file source) and publishes its scores.

Prints the images' sizes, the build times and PASS/FAIL per check; exits 1 when a check fails. Standard
library only: run it with the system's python3, e.g.
  sudo python3 scripts/container-check.py --wheels /opt/wheels --torch-index-url https://pypi.org/simple
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_CLIP = ROOT / "service" / "assets" / "demo.mp4"
PYTHON_BASE = """FROM {base}
RUN apt-get update \\
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 \\
    && rm -rf /var/lib/apt/lists/*
"""
REDIS_IMAGE = """FROM {base}
RUN apt-get update \\
    && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/*
USER redis
WORKDIR /var/lib/redis
ENTRYPOINT ["redis-server", "--bind", "127.0.0.1", "--port", "6379"]
"""
BUILD_WHEELS = "/wheels"  # where --wheels is mounted during the build
BUILD_CA = "/etc/ocrgan-build/ca.pem"  # where --ca-bundle is mounted during the build
STREAM_ID = "demo"


class Failure(Exception):
    """A check that did not pass, with what was seen instead."""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def podman(*args: str, check: bool = True, capture: bool = True, timeout: float | None = None,
           stdin: int | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(["podman", *args], capture_output=capture, text=True, timeout=timeout, stdin=stdin)
    if check and out.returncode != 0:
        raise Failure(f"podman {' '.join(args[:3])} ... exited {out.returncode}: {(out.stderr or '').strip()[-400:]}")
    return out


def heavy(args: list[str]) -> list[str]:
    """A build step under `nice`, so that the machine stays usable while it runs."""
    return ["nice", "-n", "10", *args]


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def containers_conf(workdir: Path) -> None:
    """podman's settings for this run, unless CONTAINERS_CONF names some: no default ulimits (a container in an
    unprivileged host container cannot raise them) and runc where installed (crun refuses hybrid cgroup setups)."""
    if os.environ.get("CONTAINERS_CONF"):
        return
    conf = workdir / "containers.conf"
    text = "[containers]\ndefault_ulimits = []\n"
    if shutil.which("runc"):
        text += '\n[engine]\nruntime = "runc"\n'
    conf.write_text(text)
    os.environ["CONTAINERS_CONF"] = str(conf)


def make_base(name: str, mirror: str, workdir: Path) -> float:
    """A Debian bookworm image from the mirror (debootstrap minbase), imported as `name`; seconds taken."""
    started = time.monotonic()
    rootfs = workdir / "rootfs"
    log(f"debootstrap bookworm from {mirror} (a few minutes)")
    subprocess.run(heavy(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror]), check=True,
                   stdout=subprocess.DEVNULL)
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):  # downloaded packages and indexes: not needed
        for f in (rootfs / cache).glob("*"):
            if f.is_file():
                f.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    podman("import", "-", name, stdin=tar.stdout)
    tar.wait()
    shutil.rmtree(rootfs)
    return time.monotonic() - started


def build(tag: str, containerfile: str, context: Path, build_args: dict[str, str], volumes: list[str]) -> float:
    """podman build in the Docker format (the OCI format drops HEALTHCHECK); seconds taken."""
    started = time.monotonic()
    args = ["podman", "build", "--format", "docker", "--pull=never", "-f", containerfile, "-t", tag]
    for k, v in build_args.items():
        args += ["--build-arg", f"{k}={v}"]
    for v in volumes:
        args += ["-v", v]
    log(f"building {tag}")
    out = subprocess.run(heavy([*args, str(context)]), capture_output=True, text=True)
    if out.returncode != 0:
        raise Failure(f"building {tag} failed:\n{(out.stdout + out.stderr)[-3000:]}")
    return time.monotonic() - started


def built_from_text(tag: str, text: str, workdir: Path) -> float:
    """Build `tag` from a Containerfile held in this script, unless it exists; seconds taken (0 when cached)."""
    if image_exists(tag):
        log(f"{tag}: present, not rebuilt")
        return 0.0
    ctx = workdir / tag.replace("/", "_").replace(":", "_")
    ctx.mkdir()
    (ctx / "Containerfile").write_text(text)
    return build(tag, str(ctx / "Containerfile"), ctx, {}, [])


def image_size(name: str) -> str:
    size = int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())
    return f"{size / 1e6:.0f} MB"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, content_type: str | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 2.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"no {what} within {timeout:.0f}s")
        time.sleep(interval)


class Run:
    """The pods this run starts, removed at the end whatever happens."""

    def __init__(self) -> None:
        self.pods: list[str] = []

    def pod(self, name: str, port: int) -> str:
        podman("pod", "rm", "--force", name, check=False)
        podman("pod", "create", "--name", name, "--publish", f"127.0.0.1:{port}:8000")
        self.pods.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.pods:
            podman("pod", "rm", "--force", "--time", "2", name, check=False)


def service_logs(container: str) -> str:
    out = podman("logs", "--tail", "30", container, check=False)
    return (out.stdout + out.stderr).strip()


def check_cpu_torch(image: str) -> str:
    """torch is the CPU build, and no CUDA libraries came with it."""
    code = ("import importlib.metadata as m, torch; "
            "print(torch.__version__, torch.version.cuda, sum(d.metadata['Name'].startswith('nvidia') "
            "for d in m.distributions()))")
    out = podman("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", code).stdout.split()
    version, cuda, nvidia = out[-3:]
    if not version.endswith("+cpu") or cuda != "None" or nvidia != "0":
        raise Failure(f"torch {version}, CUDA {cuda}, {nvidia} nvidia-* packages")
    return f"torch {version}, no CUDA, no nvidia-* packages"


def check_healthy(container: str, base_url: str) -> str:
    """The image's own HEALTHCHECK (run by `podman healthcheck run`: no systemd timers here) passes, and the
    service answers /healthz and /readyz."""
    def healthy() -> bool:
        return podman("healthcheck", "run", container, check=False).returncode == 0
    started = time.monotonic()
    try:
        wait_for(healthy, 240, "healthy HEALTHCHECK")
    except Failure as e:
        raise Failure(f"{e}; container log:\n{service_logs(container)}") from None
    status = podman("inspect", "--format", "{{.State.Health.Status}}", container, check=False).stdout.strip()
    codes = {path: http("GET", base_url + path)[0] for path in ("/healthz", "/readyz")}
    if status != "healthy" or any(c != 200 for c in codes.values()):
        raise Failure(f"health status {status!r}, {codes}")
    return f"healthy after {time.monotonic() - started:.0f}s; GET /healthz 200, /readyz 200"


def check_score(base_url: str) -> str:
    """Every frame of the demo clip gets a finite score, normalised by the clip's normal opening (as `ocrgan demo`
    does: the synthetic scene is not the checkpoint's training footage)."""
    code, body = http("POST", base_url + "/score?calibrate_seconds=10", DEMO_CLIP.read_bytes(),
                      "application/octet-stream", timeout=300)
    if code != 200:
        raise Failure(f"POST /score answered {code}: {body[:300]!r}")
    result = json.loads(body)
    frames = result["frames"]
    if not frames or len(frames) != result["num_frames"]:
        raise Failure(f"{len(frames)} scored frames for num_frames={result['num_frames']}")
    if not all(math.isfinite(f["score"]) and math.isfinite(f["normalised"]) for f in frames):
        raise Failure("a frame's score is not finite")
    anomalous = [f["timestamp"] for f in frames if f["anomaly"]]
    first = f", the first at {anomalous[0]:.1f}s" if anomalous else ""
    return (f"{len(frames)} frames scored in {result['elapsed_ms'] / 1000:.1f}s; {len(anomalous)} flagged anomalous"
            f"{first}")


def check_redis_camera(container: str, redis: str, base_url: str) -> str:
    """The replica runs on the Redis backend, registers the demo clip as a camera, and its scores arrive."""
    code, body = http("GET", base_url + "/model")
    backend = json.loads(body).get("backend") if code == 200 else None
    if backend != "redis":
        raise Failure(f"GET /model: {code}, backend {backend!r}")
    clip = podman("exec", container, "python", "-c",
                  "from service.settings import ASSETS; print(ASSETS / 'demo.mp4')").stdout.strip()
    spec = {"id": STREAM_ID, "url": clip, "fps": 10, "calibrate": False}
    code, body = http("POST", base_url + "/streams", json.dumps(spec).encode(), "application/json")
    if code != 201:
        raise Failure(f"POST /streams answered {code}: {body[:300]!r}")

    def scores() -> list:
        code, body = http("GET", f"{base_url}/streams/{STREAM_ID}/scores")
        return json.loads(body)["items"] if code == 200 else []
    try:
        items = wait_for(scores, 240, f"scores of camera {STREAM_ID!r}")
    except Failure as e:
        raise Failure(f"{e}; stream: {http('GET', f'{base_url}/streams/{STREAM_ID}')[1][:400]!r}") from None
    keys = podman("exec", redis, "redis-cli", "--scan", "--pattern", "ocrgan*").stdout.split()
    if not keys:
        raise Failure("the camera is scored but Redis holds no ocrgan* keys")
    return f"camera {STREAM_ID!r} registered, {len(items)} scores read back; {len(keys)} ocrgan* keys in Redis"


def run_checks(image: str, redis_image: str, run: Run, suffix: str) -> list[tuple[str, str, str]]:
    results: list[tuple[str, str, str]] = []

    def attempt(name: str, fn: Callable[[], str]) -> bool:
        try:
            detail = fn()
        except (Failure, KeyError, ValueError, subprocess.TimeoutExpired) as e:
            results.append((name, "FAIL", str(e)))
            log(f"FAIL {name}: {e}")
            return False
        results.append((name, "PASS", detail))
        log(f"PASS {name}: {detail}")
        return True

    attempt("torch is the CPU build", lambda: check_cpu_torch(image))
    # The image as `docker run -p 127.0.0.1:8000:8000 ocrgan-video:cpu` starts it: embedded backend.
    port = free_port()
    pod = run.pod(f"ocrgan-check-embedded-{suffix}", port)
    plain = f"{pod}-service"
    podman("run", "-d", "--pod", pod, "--name", plain, image)
    url = f"http://127.0.0.1:{port}"
    if attempt("image turns healthy (HEALTHCHECK, /healthz, /readyz)", lambda: check_healthy(plain, url)):
        attempt("POST /score scores service/assets/demo.mp4", lambda: check_score(url))
    else:
        results.append(("POST /score scores service/assets/demo.mp4", "FAIL", "not run: the service is not healthy"))

    # Redis and a replica in one pod: they share its loopback, and only the service's port is published.
    port = free_port()
    pod = run.pod(f"ocrgan-check-redis-{suffix}", port)
    redis, service = f"{pod}-redis", f"{pod}-service"
    podman("run", "-d", "--pod", pod, "--name", redis, redis_image)
    podman("run", "-d", "--pod", pod, "--name", service, "-e", "OCRGAN_REDIS_URL=redis://127.0.0.1:6379/0",
           "-e", "OCRGAN_ALLOW_FILE_SOURCES=true", image)
    url = f"http://127.0.0.1:{port}"
    if attempt("Redis backend: replica turns healthy", lambda: check_healthy(service, url)):
        attempt("Redis backend: camera registered and scored", lambda: check_redis_camera(service, redis, url))
    else:
        results.append(("Redis backend: camera registered and scored", "FAIL", "not run: the replica is not healthy"))
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-image", default="localhost/bookworm-base:latest",
                   help="Debian bookworm image; made with debootstrap when missing")
    p.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror for debootstrap")
    p.add_argument("--python-image", default="localhost/ocrgan-python:3.11-bookworm",
                   help="the base with Debian's python3 and venv (PYTHON_IMAGE of the build); made when missing")
    p.add_argument("--redis-image", default="localhost/ocrgan-redis:bookworm", help="made when missing")
    p.add_argument("--image", default="localhost/ocrgan-video:cpu", help="the tag of the service image built")
    p.add_argument("--wheels", type=Path, help="a directory of wheels (e.g. a torch+cpu wheel), searched first")
    p.add_argument("--torch-index-url", help="index for torch and its dependencies (default: the Dockerfile's)")
    p.add_argument("--index-url", help="index for everything else (default: the Dockerfile's, PyPI)")
    p.add_argument("--ca-bundle", type=Path, default=Path(os.environ["PIP_CERT"]) if os.environ.get("PIP_CERT")
                   else None, help="CA bundle pip trusts inside the build (default: $PIP_CERT)")
    args = p.parse_args(argv)
    for name in ("wheels", "ca_bundle"):
        path = getattr(args, name)
        if path is not None and not path.exists():
            p.error(f"--{name.replace('_', '-')} {path} does not exist")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed (Debian: apt-get install podman runc debootstrap)", file=sys.stderr)
            return 2
    timings: dict[str, float] = {}
    run = Run()
    with tempfile.TemporaryDirectory(prefix="ocrgan-container-", dir="/var/tmp") as tmp:
        workdir = Path(tmp)
        containers_conf(workdir)
        try:
            if image_exists(args.base_image):
                log(f"{args.base_image}: present, not rebuilt")
                timings["base (debootstrap + import)"] = 0.0
            else:
                timings["base (debootstrap + import)"] = make_base(args.base_image, args.mirror, workdir)
            timings["python base"] = built_from_text(args.python_image, PYTHON_BASE.format(base=args.base_image),
                                                     workdir)
            timings["redis image"] = built_from_text(args.redis_image, REDIS_IMAGE.format(base=args.base_image),
                                                     workdir)
            build_args = {"PYTHON_IMAGE": args.python_image}
            volumes = []
            if args.torch_index_url:
                build_args["TORCH_INDEX_URL"] = args.torch_index_url
            if args.index_url:
                build_args["PIP_INDEX_URL"] = args.index_url
            if args.wheels:
                build_args["PIP_FIND_LINKS"] = BUILD_WHEELS
                volumes.append(f"{args.wheels.resolve()}:{BUILD_WHEELS}:ro")
            if args.ca_bundle:
                build_args["PIP_CERT"] = BUILD_CA
                volumes.append(f"{args.ca_bundle.resolve()}:{BUILD_CA}:ro")
            timings["service image (docker/Dockerfile)"] = build(args.image, str(ROOT / "docker" / "Dockerfile"),
                                                                 ROOT, build_args, volumes)
        except (Failure, subprocess.CalledProcessError) as e:
            print(f"FAIL build: {e}", file=sys.stderr)
            return 1

        print("\nbuild times (0 s: image present, not rebuilt):")
        for step, seconds in timings.items():
            print(f"  {step:<36} {seconds:7.0f} s")
        print("image sizes:")
        for name in (args.base_image, args.python_image, args.redis_image, args.image):
            print(f"  {name:<44} {image_size(name)}")
        print()
        try:
            results = run_checks(args.image, args.redis_image, run, str(os.getpid()))
        except Failure as e:
            results = [("starting the containers", "FAIL", str(e))]
        finally:
            run.cleanup()
    print("\nchecks:")
    for name, verdict, detail in results:
        print(f"  {verdict} {name}: {detail}")
    failed = [r for r in results if r[1] != "PASS"]
    print(f"\n{'FAIL' if failed else 'PASS'}: {len(results) - len(failed)} of {len(results)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
