"""`ocrgan demo`: the service on the embedded backend with the shipped checkpoint and a bundled looping
camera (service/assets/demo.mp4, paced in real time), so the page shows live scores at once. Needs no
Redis, GPU, dataset or network."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path

from service.settings import ASSETS, DEFAULT_CHECKPOINT, state_dir

log = logging.getLogger("ocrgan.demo")
DEMO_CLIP = ASSETS / "demo.mp4"
DEMO_STREAM = "demo"
# a small random-weight model, only for a checkout without the shipped checkpoint
FALLBACK = dict(isize=(64, 96), nc=1, ngf=16, ndf=16, nz=32, num_frames=8, stride=4)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ocrgan"


def demo_checkpoint(requested: Path | None) -> Path:
    """The checkpoint to demo: the one asked for, else the shipped one, else random weights (warned)."""
    if requested is not None:
        return requested
    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT
    path = cache_dir() / "demo-random-weights.safetensors"
    log.warning("%s", "!" * 100)
    log.warning("!! %s is missing: the demo runs a RANDOM-WEIGHT model; its scores mean nothing.", DEFAULT_CHECKPOINT)
    log.warning("!! Train one (`ocrgan train`) or set OCRGAN_CHECKPOINT / --checkpoint. Using %s", path)
    log.warning("%s", "!" * 100)
    if not path.is_file():
        import torch

        from model import OCRGANConfig, OCRGANVideo, save_checkpoint

        torch.manual_seed(0)
        save_checkpoint(OCRGANVideo(OCRGANConfig(**FALLBACK)), path,
                        training={"note": "random weights, made by `ocrgan demo` as a stand-in"})
    return path


def free_or_next(host: str, port: int) -> int:
    """`port` if it can be bound, else a free one (the demo should start even when 8000 is taken)."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return port
        except OSError:
            s.bind((host, 0))
            free = s.getsockname()[1]
    log.warning("port %d is taken; using %d", port, free)
    return free


def register_demo_camera(services) -> None:
    """Start the bundled looping camera (a local file: allowed for this built-in stream only)."""
    from service.api.schemas import StreamSpec
    from service.cameras.urls import StreamTarget

    spec = StreamSpec(id=DEMO_STREAM, url=f"file://{DEMO_CLIP}", fps=10, calibrate=True)
    services.streams.add_local(spec, StreamTarget(str(DEMO_CLIP), True))


def run_demo(args: argparse.Namespace) -> int:
    from service.cli import _load, _logging, _settings, run_server

    _logging(args.log_level or "info")
    if not DEMO_CLIP.is_file():
        log.error("%s is missing (python service/assets/make_demo_clip.py makes it)", DEMO_CLIP)
        return 2
    checkpoint = demo_checkpoint(args.checkpoint)
    args.checkpoint = None
    settings = _settings(args, checkpoint=checkpoint, registry_path=state_dir() / "demo-streams.json",
                         calibration_frames=100)
    settings = settings.model_copy(update={"redis_url": None, "port": free_or_next(settings.host, settings.port)})
    host = _load(settings)
    if host is None:
        return 2
    url = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}/"

    def ready(services) -> None:
        register_demo_camera(services)
        print(f"\n  ocrgan demo: open {url} (camera '{DEMO_STREAM}' plays {DEMO_CLIP.name} in a loop; "
              "a fast object crosses the scene twice a loop)\n  Ctrl+C stops it.\n", flush=True)

    run_server(settings, host, ready)
    return 0
