"""`ocrgan serve`, `ocrgan score FILE`: argument parsing and the checks that answer a user's
mistake at once; the model and torch are imported only after them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ocrgan_cli import file_problem, refuse
from service.api.launch import add_setting_options, cli_settings, configure_logging, load_host, port_problem, run_server

CHECKPOINT_HINT = " (set --checkpoint or OCRGAN_CHECKPOINT)"


def _serve(args: argparse.Namespace) -> int:
    settings = cli_settings(args)
    problem = file_problem(settings.checkpoint, "checkpoint")
    if problem:
        return refuse("serve", problem + CHECKPOINT_HINT)
    problem = port_problem(settings.host, settings.port)
    if problem:
        return refuse("serve", problem)
    configure_logging(settings.log_level)
    host = load_host(settings)
    if host is None:
        return 2
    run_server(settings, host)
    return 0


def video_problem(path: Path) -> str | None:
    """Why `path` is no video to score, from its container's header alone (PyAV, no torch), or None; the rest
    (still images, frame and pixel budgets, damage) Clip checks once the model is loaded."""
    problem = file_problem(path, "video")
    if problem:
        return problem
    import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.video:
                return f"{path}: no video stream in the {container.format.name} file"
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        return f"{path}: not a video file FFmpeg can read ({getattr(e, 'strerror', None) or type(e).__name__})"
    return None


def _score(args: argparse.Namespace) -> int:
    if args.calibrate_seconds is not None and not 0 < args.calibrate_seconds < float("inf"):
        return refuse("score", f"--calibrate-seconds must be a positive number, not {args.calibrate_seconds:g}")
    # one clip: torch unless OCRGAN_RUNTIME says otherwise (an export in the background would outlast most clips)
    settings = cli_settings(args, runtime="torch")
    problem = video_problem(Path(args.file))
    if problem:
        return refuse("score", problem)
    problem = file_problem(settings.checkpoint, "checkpoint")
    if problem:
        return refuse("score", problem + CHECKPOINT_HINT)
    from model import anomalous_runs
    from service.clips.video import ClipLimits, inline_runner, score_file
    from service.errors import ServiceError
    from service.inference.calibration import CheckpointScale, OpeningScale

    configure_logging("warning" if args.json else settings.log_level)
    host = load_host(settings)
    if host is None:
        return 2
    limits = ClipLimits.from_settings(settings)
    scale = CheckpointScale() if args.calibrate_seconds is None else OpeningScale(args.calibrate_seconds)
    try:
        result = score_file(Path(args.file), host, limits, host.stride, args.heatmaps, settings.heatmap_grid,
                            inline_runner(host, host.batch_sizes(settings)[1]), scale=scale)
    except ServiceError as e:
        return refuse("score", f"{args.file}: {e.message}")
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return 0
    frames = result["frames"]
    runs = anomalous_runs(f["anomaly"] for f in frames)
    peak = max((f for f in frames if not f["calibrating"]), key=lambda f: f["normalised"])
    print(f"{args.file}: {result['num_frames']} frames, {result['width']}x{result['height']}, "
          f"{result['fps'] or 0:.2f} fps, scored in {result['elapsed_ms'] / 1000:.2f}s")
    print(_scale_line(result["calibration"]))
    print(f"threshold {host.threshold:.3f} (normalised); peak {peak['normalised']:.3f} at frame {peak['index']}")
    print(f"anomalous frames: {sum(b - a for a, b in runs)}" + (f" ({_ranges(runs)})" if runs else ""))
    return 0


def _scale_line(calibration: str | dict) -> str:
    if calibration == "checkpoint":
        return "scale: the checkpoint's statistics"
    c = calibration
    return (f"scale: calibrated on the first {c['seconds']:g} s ({c['frames']} frames, not flagged): "
            f"mean {c['mean']:.4g}, std {c['std']:.4g}")


def _ranges(runs: list[tuple[int, int]]) -> str:
    """[start, end) runs as "3-7, 12" (inclusive frame numbers)."""
    return ", ".join(f"{a}" if b == a + 1 else f"{a}-{b - 1}" for a, b in runs)


def register(sub: argparse._SubParsersAction) -> None:
    about = "run the inference service (REST, WebSocket, cameras, metrics, page)"
    s = sub.add_parser("serve", help=about, description=about)
    add_setting_options(s, "host", "port", "checkpoint", "device", "redis_url", "log_level")
    s.set_defaults(func=_serve)

    about = "score a video file frame by frame, as POST /score does"
    c = sub.add_parser("score", help=about, description=about)
    c.add_argument("file", help="the video file to score")
    add_setting_options(c, "checkpoint", "device", "stride", "log_level")
    c.add_argument("--json", action="store_true", help="print the full JSON result")
    c.add_argument("--heatmaps", action="store_true", help="add coarse per-frame anomaly maps (with --json)")
    c.add_argument("--calibrate-seconds", dest="calibrate_seconds", type=float, metavar="N",
                   help="take the first N seconds as normal footage of the scene: their mean/std normalise the "
                        "clip, as POST /score?calibrate_seconds=N (default: the checkpoint's statistics)")
    c.set_defaults(func=_score)
