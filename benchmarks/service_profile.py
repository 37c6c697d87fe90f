"""Where the service's CPU time goes: `ocrgan serve` under N cameras at 25 fps and back-to-back
uploads, sampled by py-spy, summarised by stage and by function.

    python benchmarks/service_profile.py [--checkpoint PATH | --random ped2|small|tiny] [--cameras 2]
                                         [--uploaders 1] [--seconds 30] [--threads 1] [--native]

The cameras are the bundled demo clip (240x160 H.264) played in real time (file sources, allowed for
this run), each sampled at 25 fps; the uploads post a 10 s excerpt of it. py-spy samples every
thread of the service process (not the idle ones) at 100 Hz for --seconds after a warm-up. A sample is
counted for the innermost stage its stack passes through (so preprocessing called from a camera
thread counts as preprocessing). The raw stacks are kept for flame graphs (flamegraph.pl, speedscope).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from service_capacity import RANDOM, checkpoint_for  # noqa: E402

from service.demo import DEMO_CLIP  # noqa: E402
from testkit.servers import AppProcess  # noqa: E402

# (stage, pattern on "function (file)"), innermost match wins; checked from the leaf up
STAGES = [
    ("model forward", r"\(model/(?!preprocess|windows)\S+\)"),  # torch frames count for their caller
    ("preprocess", r"^preprocess \(model/preprocess\.py"),
    ("windows (stack, assemble)", r"\(model/windows\.py"),
    ("decode (cameras and clips)", r"\(media/decode\.py|^(_decode|frames) \(service/cameras/source\.py"),
    ("camera: frame conversion", r"^_accept \(service/cameras/worker\.py"),
    ("camera: other", r"\(service/cameras/(worker|source|relay)\.py"),
    ("clip: decode + conversion", r"^frames \(service/clips/video\.py"),
    ("clip: other", r"\(service/(clips/\S+|api/routes/score)\.py"),
    ("publishing (scores, events, hub, backend)", r"\(service/(cameras/scores|publishing/\S+|api/services)\.py"),
    ("scorer loop", r"\(service/inference/scorer\.py"),
    ("coordinator, views, metrics", r"\(service/(cameras/manager|metrics|api/routes/\S+)\.py"),
    ("HTTP server (uvicorn, starlette)", r"\((uvicorn|starlette|fastapi|anyio|h11|httptools|websockets)/"),
]


def frame_name(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (file path from the package)' without the line number."""
    return re.sub(r":\d+\)$", ")", frame.strip())


def stage_of(stack: list[str]) -> str:
    for frame in reversed(stack):  # leaf first
        for stage, pattern in STAGES:
            if re.search(pattern, frame):
                return stage
    return "other"


def summarise(raw: Path) -> tuple[collections.Counter, collections.Counter, collections.Counter, int]:
    """(samples by stage, by leaf function, by function anywhere in the stack, total samples)."""
    stages, leaves, inclusive = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        stack = [frame_name(f) for f in stack_text.split(";") if not f.startswith(("thread ", "process "))]
        total += n
        stages[stage_of(stack)] += n
        if stack:
            leaves[stack[-1]] += n
        for f in set(stack):
            inclusive[f] += n
    return stages, leaves, inclusive, total


def uploads(url: str, data: bytes, stop: threading.Event, done: list) -> None:
    with httpx.Client(base_url=url, timeout=600) as client:
        while not stop.is_set():
            if client.post("/score", files={"file": ("clip.mp4", data, "video/mp4")}).status_code == 200:
                done.append(time.monotonic())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--random", choices=sorted(RANDOM))
    p.add_argument("--cameras", type=int, default=2)
    p.add_argument("--uploaders", type=int, default=1)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--native", action="store_true", help="also sample native frames (slower, more detail)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ocrgan-profile-"))
    checkpoint = checkpoint_for(args, tmp)
    excerpt = tmp / "excerpt.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(DEMO_CLIP), "-t", "10", "-c", "copy", str(excerpt)],
                   check=True)
    app = AppProcess({"OCRGAN_CHECKPOINT": str(checkpoint), "OCRGAN_TORCH_THREADS": str(args.threads),
                      "OCRGAN_DEVICE": "cpu", "OCRGAN_ALLOW_FILE_SOURCES": "true", "OCRGAN_LOG_LEVEL": "warning",
                      "OCRGAN_REGISTRY_PATH": str(tmp / "streams.json"), "OCRGAN_UPLOAD_DIR": str(tmp)},
                     tmp / "service.log")
    stop, done = threading.Event(), []
    raw = tmp / "stacks.txt"
    try:
        for i in range(args.cameras):
            app.client.post("/streams", json={"id": f"cam{i}", "url": f"file://{DEMO_CLIP}", "fps": 25})
        workers = [threading.Thread(target=uploads, args=(app.url, excerpt.read_bytes(), stop, done), daemon=True)
                   for _ in range(args.uploaders)]
        for w in workers:
            w.start()
        time.sleep(args.warmup)
        before = {v["id"]: v for v in app.client.get("/streams").json()["streams"]}
        t0 = time.monotonic()
        subprocess.run(["py-spy", "record", "--pid", str(app.pid), "--duration", str(int(args.seconds)),
                        "--rate", "100", "--format", "raw", "--output", str(raw), "--nonblocking",
                        *(["--native"] if args.native else [])], check=True, capture_output=True)
        after = {v["id"]: v for v in app.client.get("/streams").json()["streams"]}
        wall = time.monotonic() - t0
        stop.set()
    finally:
        stop.set()
        app.stop()
    scored = sum(after[k]["frames_scored"] - before[k]["frames_scored"] for k in after)
    dropped = sum(after[k]["frames_dropped"] - before[k]["frames_dropped"] for k in after)
    clips = sum(1 for t in done if t0 <= t <= t0 + wall)
    stages, leaves, inclusive, total = summarise(raw)
    print(f"model {checkpoint.name}, {args.cameras} cameras at 25 fps, {args.uploaders} uploader(s), "
          f"{args.threads} torch thread(s); {wall:.0f} s sampled: {scored / wall:.1f} camera frames/s scored, "
          f"{dropped / wall:.1f} dropped, {clips} clips scored")
    print(f"{total} samples = {total / 100 / wall:.2f} busy threads on average (100 Hz, idle threads excluded)\n")
    print("| stage | share of busy samples |")
    print("|---|---|")
    for stage, n in stages.most_common():
        print(f"| {stage} | {100 * n / total:.1f}% |")
    print("\n| function (self) | share |")
    print("|---|---|")
    for f, n in leaves.most_common(15):
        print(f"| `{f}` | {100 * n / total:.1f}% |")
    print("\n| function (inclusive, service code) | share |")
    print("|---|---|")
    for f, n in [(f, n) for f, n in inclusive.most_common() if "service/" in f or "model/" in f][:15]:
        print(f"| `{f}` | {100 * n / total:.1f}% |")
    print(f"\nraw stacks: {raw}")


if __name__ == "__main__":
    main()
