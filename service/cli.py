"""`ocrgan serve`, `ocrgan score FILE`, `ocrgan demo` (argument parsing; the work is imported lazily)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)


def _settings(args: argparse.Namespace, **defaults):
    """Settings from the environment / .env, with the command line on top (`defaults` below both)."""
    from pydantic import ValidationError

    from service.settings import Settings

    given = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    try:
        if defaults:
            env = Settings()
            defaults = {k: v for k, v in defaults.items() if k not in env.model_fields_set}
        return Settings(**{**defaults, **given})
    except (ValidationError, ValueError) as e:
        raise SystemExit(f"ocrgan: invalid settings:\n{e}") from None


def _load(settings):
    """The model, or None after printing why the checkpoint cannot be used."""
    from model import CheckpointError
    from service.inference.host import ModelHost

    try:
        return ModelHost.load(settings)
    except (CheckpointError, ValueError, RuntimeError) as e:
        logging.getLogger("ocrgan").error("cannot start: %s", e)
        return None


def run_server(settings, host, on_startup=None) -> None:
    import uvicorn

    from service.api.app import create_app

    uvicorn.run(create_app(settings, host, on_startup), host=settings.host, port=settings.port,
                log_level=settings.log_level, ws="websockets-sansio", access_log=settings.log_level == "debug")


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging(settings.log_level)
    host = _load(settings)
    if host is None:
        return 2
    run_server(settings, host)
    return 0


def _score(args: argparse.Namespace) -> int:
    from service.clips.video import ClipLimits, inline_runner, score_file
    from service.errors import ServiceError
    from service.inference.calibration import CheckpointScale, OpeningScale

    if args.calibrate_seconds is not None and not 0 < args.calibrate_seconds < float("inf"):
        print(f"ocrgan score: --calibrate-seconds must be a positive number, not {args.calibrate_seconds:g}",
              file=sys.stderr)
        return 2
    settings = _settings(args)
    _logging("warning" if args.json else settings.log_level)
    host = _load(settings)
    if host is None:
        return 2
    limits = ClipLimits.from_settings(settings)
    scale = CheckpointScale() if args.calibrate_seconds is None else OpeningScale(args.calibrate_seconds)
    try:
        result = score_file(Path(args.file), host, limits, host.stride, args.heatmaps, settings.heatmap_grid,
                            inline_runner(host, host.batch_sizes(settings)[1]), scale=scale)
    except ServiceError as e:
        print(f"ocrgan score: {args.file}: {e.message}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return 0
    frames = result["frames"]
    flagged = [f["index"] for f in frames if f["anomaly"]]
    peak = max((f for f in frames if not f["calibrating"]), key=lambda f: f["normalised"])
    print(f"{args.file}: {result['num_frames']} frames, {result['width']}x{result['height']}, "
          f"{result['fps'] or 0:.2f} fps, scored in {result['elapsed_ms'] / 1000:.2f}s")
    print(_scale_line(result["calibration"]))
    print(f"threshold {host.threshold:.3f} (normalised); peak {peak['normalised']:.3f} at frame {peak['index']}")
    print(f"anomalous frames: {len(flagged)}" + (f" ({_ranges(flagged)})" if flagged else ""))
    return 0


def _scale_line(calibration: str | dict) -> str:
    if calibration == "checkpoint":
        return "scale: the checkpoint's statistics"
    c = calibration
    return (f"scale: calibrated on the first {c['seconds']:g} s ({c['frames']} frames, not flagged): "
            f"mean {c['mean']:.4g}, std {c['std']:.4g}")


def _ranges(indices: list[int]) -> str:
    out, start = [], None
    for i, v in enumerate(indices):
        if start is None:
            start = v
        if i + 1 == len(indices) or indices[i + 1] != v + 1:
            out.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out)


def _demo(args: argparse.Namespace) -> int:
    from service.demo import run_demo

    return run_demo(args)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="run the inference service (REST, WebSocket, cameras, metrics, page)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--checkpoint", type=Path)
    s.add_argument("--device", choices=["auto", "cpu", "cuda"])
    s.add_argument("--redis-url", dest="redis_url")
    s.add_argument("--log-level", dest="log_level", choices=["debug", "info", "warning", "error"])
    s.set_defaults(func=_serve)

    c = sub.add_parser("score", help="score a video file frame by frame, as POST /score does")
    c.add_argument("file")
    c.add_argument("--checkpoint", type=Path)
    c.add_argument("--device", choices=["auto", "cpu", "cuda"])
    c.add_argument("--stride", type=int)
    c.add_argument("--json", action="store_true", help="print the full JSON result")
    c.add_argument("--heatmaps", action="store_true", help="add coarse per-frame anomaly maps (with --json)")
    c.add_argument("--calibrate-seconds", dest="calibrate_seconds", type=float, metavar="N",
                   help="take the first N seconds as normal footage of the scene: their mean/std normalise the "
                        "clip, as POST /score?calibrate_seconds=N (default: the checkpoint's statistics)")
    c.set_defaults(func=_score)

    d = sub.add_parser("demo", help="serve the shipped model on a bundled looping camera; open the printed URL")
    d.add_argument("--host")
    d.add_argument("--port", type=int)
    d.add_argument("--checkpoint", type=Path)
    d.add_argument("--log-level", dest="log_level", choices=["debug", "info", "warning", "error"])
    d.set_defaults(func=_demo)
