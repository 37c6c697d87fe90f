"""A soak run of any length: `ocrgan serve` under N RTSP cameras, uploads and WebSocket clients, with
memory, threads, file descriptors, frames and errors reported at the end (testkit/load_run.py).

    python scripts/soak.py [--minutes 60] [--cameras 8] [--fps 25] [--sample-fps 10] [--uploaders 2]
                           [--checkpoint service/assets/default.safetensors] [--threads 1]

Needs what the tests need: the system python with gst-rtsp-server (scripts/system-deps.sh) and ffmpeg.
Exits 1 when a bound of testkit/load_run.py (the one tests/service/test_load.py holds) is broken.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.settings import DEFAULT_CHECKPOINT  # noqa: E402
from testkit.load_run import LoadConfig, check, run_load  # noqa: E402
from testkit.synthetic import moving_shapes, write_video  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=30.0, help="seconds before measuring")
    p.add_argument("--cameras", type=int, default=8)
    p.add_argument("--fps", type=int, default=25, help="of the RTSP server")
    p.add_argument("--sample-fps", type=float, default=10.0, help="each camera's sampling rate")
    p.add_argument("--size", default="240x160")
    p.add_argument("--uploaders", type=int, default=2)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--threads", type=int, default=1, help="OCRGAN_TORCH_THREADS")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ocrgan-soak-"))
    clip = write_video(tmp / "upload.mp4", moving_shapes(100, seed=5)[0])
    cfg = LoadConfig(args.checkpoint, clip, cameras=args.cameras, fps=args.fps, sample_fps=args.sample_fps,
                     size=args.size, uploaders=args.uploaders, seconds=args.minutes * 60, warmup=args.warmup,
                     env={"OCRGAN_TORCH_THREADS": str(args.threads)})
    print(f"soak: {args.minutes:g} min, {args.cameras} cameras, {args.checkpoint.name}; files in {tmp}", flush=True)
    report = run_load(cfg, tmp)
    try:
        check(report, cfg)
    except AssertionError as e:
        print(f"FAILED: {e}")
        return 1
    print("all bounds held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
