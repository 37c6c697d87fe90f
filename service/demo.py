"""`ocrgan demo`: the service on the embedded backend with the shipped checkpoint and a bundled looping
camera (service/assets/demo.mp4, paced in real time), so the page shows live scores at once. Needs no
Redis, GPU, dataset or network. It registers its own subcommand; service.settings (pydantic) is imported only
when it runs, so `ocrgan` starts at once and an install without the service extras still trains."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ocrgan_cli import file_problem, refuse
from service.api.launch import (
    add_setting_options,
    cli_settings,
    configure_logging,
    free_port,
    load_host,
    port_problem,
    run_server,
)

log = logging.getLogger("ocrgan.demo")
DEMO_CLIP = Path(__file__).parent / "assets" / "demo.mp4"  # in service.settings.ASSETS
DEMO_STREAM = "demo"
# a small random-weight model, only for a checkout without the shipped checkpoint
FALLBACK = dict(isize=(64, 96), nc=1, ngf=16, ndf=16, nz=32, num_frames=8, stride=4)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ocrgan"


def demo_checkpoint() -> Path:
    """The checkpoint to demo when none was chosen: the shipped one, else random weights (warned)."""
    from service.settings import DEFAULT_CHECKPOINT

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


def restored_cameras(registry: Path, fresh: bool) -> None:
    """Say which cameras of earlier demo runs come back (the embedded backend keeps them in `registry`), or, with
    --fresh, forget them."""
    from service.publishing.backends.embedded import EmbeddedBackend

    ids = sorted(EmbeddedBackend(registry, 1, "demo").load_specs())
    if fresh:
        registry.unlink(missing_ok=True)
        if ids:
            print(f"ocrgan demo: --fresh: forgot the cameras of earlier demo runs ({', '.join(ids)}); "
                  f"deleted {registry}", flush=True)
    elif ids:
        print(f"ocrgan demo: restoring {len(ids)} camera(s) added in earlier demo runs: {', '.join(ids)} "
              f"(kept in {registry}; `ocrgan demo --fresh` starts without them)", flush=True)


def register_demo_camera(services) -> None:
    """Start the bundled looping camera (a local file: allowed for this built-in stream only)."""
    from service.api.schemas import StreamSpec
    from service.cameras.urls import StreamTarget

    spec = StreamSpec(id=DEMO_STREAM, url=f"file://{DEMO_CLIP}", fps=10, calibrate=True)
    services.streams.add_local(spec, StreamTarget(str(DEMO_CLIP), True))


def run_demo(args: argparse.Namespace) -> int:
    from service.settings import state_dir

    # the clip loops its two staged anomalies every 30 s: a third of its frames, too many to learn a normal level
    # from again, so the demo camera keeps its warm-up's
    settings = cli_settings(args, registry_path=state_dir() / "demo-streams.json", calibration_frames=100,
                            recalibration_frames=0)
    configure_logging(settings.log_level)
    if not DEMO_CLIP.is_file():
        return refuse("demo", f"{DEMO_CLIP} is missing (python service/assets/make_demo_clip.py makes it)")
    chosen = "checkpoint" in settings.model_fields_set  # by --checkpoint or OCRGAN_CHECKPOINT
    problem = file_problem(settings.checkpoint, "checkpoint") if chosen else None
    if problem:
        return refuse("demo", problem)
    port, problem = settings.port, port_problem(settings.host, settings.port)
    if problem and "port" not in settings.model_fields_set and port_problem(settings.host, 0) is None:
        port, problem = free_port(settings.host), None  # the default port is taken: the demo starts anyway
        log.warning("port %d is taken; using %d", settings.port, port)
    if problem:  # a port asked for (--port, OCRGAN_PORT) that is taken, or a host it cannot listen on
        return refuse("demo", problem)
    restored_cameras(settings.registry_path, args.fresh)
    checkpoint = settings.checkpoint if chosen else demo_checkpoint()
    settings = settings.model_copy(update={"redis_url": None, "port": port, "checkpoint": checkpoint})
    host = load_host(settings)
    if host is None:
        return 2
    url = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}/"

    def ready(services) -> None:
        register_demo_camera(services)
        print(f"\n  ocrgan demo: open {url} (camera '{DEMO_STREAM}' plays {DEMO_CLIP.name} in a loop; "
              "a fast object crosses the scene twice a loop)\n  Ctrl+C stops it.\n", flush=True)

    run_server(settings, host, ready)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    about = "serve the shipped model on a bundled looping camera; open the printed URL"
    d = sub.add_parser("demo", help=about, description=about)
    add_setting_options(d, "host", "port", "checkpoint", "log_level",
                        checkpoint="the shipped model, else a random-weight stand-in (warned)")
    d.add_argument("--fresh", action="store_true",
                   help="start with the demo camera only: forget the cameras added in earlier demo runs by deleting "
                        "the demo's camera registry (demo-streams.json in $XDG_STATE_HOME/ocrgan, else "
                        "~/.local/state/ocrgan; or OCRGAN_REGISTRY_PATH); without it they come back, named at start")
    d.set_defaults(func=run_demo)
