"""End-to-end service throughput and latency with N simulated 25 fps cameras, against the bare model
measured in the same run.

    python benchmarks/service_e2e.py [--checkpoint PATH | --random small|tiny] [--cameras 8] [--seconds 20]
                                     [--source file|rtsp] [--threads 1] [--max-batch 8]

Cameras are the bundled demo clip played in real time (file) or a loopback gst-rtsp-server (rtsp, needs
python3-gi). Each camera is scored at its full 25 fps. The service runs in this process exactly as
`ocrgan serve` runs it (scorer thread, camera threads, embedded backend), twice: with micro-batching
(--max-batch) and with batches of one window.

Reported per run: frames/s offered, scored and dropped; end-to-end latency (frame decoded -> score
published) p50/p99; mean batch; how busy the model was. Against the bare model (score_windows on
ready windows, no decoding, same threads):
  - service/bare: scored frames/s over bare frames/s at the run's batch size. When the run is
    saturated (frames dropped) this is the service's efficiency; the goal is > 0.9.
  - overhead: CPU of all other threads (decode, preprocess, windows, publishing) relative to the CPU
    of the scorer thread, which runs the model; the goal is < 10%.
  - batching gain: scored frames/s with micro-batching over batch 1 (goal >= 1.5x when saturated),
    and the model time per frame at batch 1 over that with micro-batching.
Without --checkpoint or --random: service/assets/default.safetensors if present, else the small random
model (64x96, the demo's stand-in); "tiny" is the 32x48 model of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

from model import OCRGANConfig, OCRGANVideo, Window, save_checkpoint, score_windows
from service.api.schemas import StreamSpec
from service.api.services import Services
from service.cameras.urls import StreamTarget
from service.demo import DEMO_CLIP, FALLBACK
from service.inference.host import ModelHost
from service.settings import DEFAULT_CHECKPOINT, Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from testkit.servers import LOOPBACK_ONLY  # noqa: E402

RANDOM = {"small": FALLBACK, "tiny": dict(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4)}


def bare_speed(host: ModelHost, batch: int, seconds: float = 3.0) -> tuple[float, float]:
    """(published frames/s, CPU seconds per frame) of score_windows on ready windows of `batch` cameras."""
    cfg = host.model.cfg
    windows = [Window(torch.rand(cfg.num_frames, cfg.in_channels, *cfg.hw) * 2 - 1, list(range(host.stride)))
               for _ in range(batch)]
    score_windows(host.model, windows, amp=host.amp)
    n, t0, c0 = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - t0 < seconds:
        score_windows(host.model, windows, amp=host.amp)
        n += 1
    frames = n * batch * host.stride
    return frames / (time.perf_counter() - t0), (time.thread_time() - c0) / frames


class LatencyRecorder:
    """Stands in for the latency histogram: keeps every observation."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def observe(self, v: float) -> None:
        self.values.append(v)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_service(host: ModelHost, settings: Settings, targets: list[StreamTarget], fps: float, warmup: float,
                seconds: float, stagger: bool = False) -> dict:
    """Score the cameras for `seconds` after `warmup`. They start together, so each frame period's frames arrive at
    once (the worst case for latency), or with `stagger` one `1 / (fps * cameras)` s after another, spread over
    the period as independent cameras' are."""
    services = Services(settings, host)
    loop = asyncio.new_event_loop()  # never run: no WebSocket clients in a benchmark
    services.start(loop)
    rec = LatencyRecorder()
    services.metrics.latency = rec
    try:
        for i, target in enumerate(targets):
            if i and stagger:
                time.sleep(1 / (fps * len(targets)))
            services.streams.add_local(StreamSpec(id=f"cam{i}", url=target.url, fps=fps), target)
        time.sleep(warmup)
        workers = list(services.streams.workers.values())
        proc = psutil.Process()
        scorer_tid = services.scorer._thread.native_id

        def snap():
            c = proc.cpu_times()
            scorer = next(t for t in proc.threads() if t.id == scorer_tid)
            return {
                "t": time.perf_counter(), "cpu": c.user + c.system, "scorer_cpu": scorer.user_time + scorer.system_time,
                "scored": sum(w.counts["scored"] for w in workers),
                "dropped": sum(w.counts["dropped"] for w in workers),
                "decoded": sum(w.counts["decoded"] for w in workers),
                "jobs": services.scorer.windows_scored + services.scorer.frames_scored,  # windows and single frames
                "batches": services.scorer.batches,
                "infer": services.metrics.registry.get_sample_value("ocrgan_inference_seconds_sum") or 0.0,
                "lat": len(rec.values),
            }

        a = snap()
        time.sleep(seconds)
        b = snap()
    finally:
        services.stop()
        loop.close()
    wall = b["t"] - a["t"]
    scored = (b["scored"] - a["scored"]) / wall
    lat = rec.values[a["lat"]: b["lat"]]
    infer = b["infer"] - a["infer"]
    scorer_cpu = b["scorer_cpu"] - a["scorer_cpu"]
    frames = max(scored * wall, 1)
    return {
        "offered": len(targets) * fps, "decoded": (b["decoded"] - a["decoded"]) / wall, "scored": scored,
        "dropped": (b["dropped"] - a["dropped"]) / wall,
        "p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99),
        "batch": (b["jobs"] - a["jobs"]) / max(b["batches"] - a["batches"], 1),
        "busy": infer / wall, "model_s_per_frame": infer / frames, "model_cpu_per_frame": scorer_cpu / frames,
        "overhead": ((b["cpu"] - a["cpu"]) - scorer_cpu) / scorer_cpu if scorer_cpu else float("nan"),
    }


def rtsp_targets(n: int, size: str) -> tuple[subprocess.Popen, list[StreamTarget]]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mounts = ",".join(f"c{i}" for i in range(n))
    proc = subprocess.Popen(["/usr/bin/python3", str(ROOT / "testkit/rtsp_server.py"), str(port),
                             "--mounts", mounts, "--size", size, "--fps", "25"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc, [StreamTarget(f"rtsp://127.0.0.1:{port}/c{i}", False) for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--random", choices=sorted(RANDOM), help="a random-weight model instead of a checkpoint")
    p.add_argument("--cameras", type=int, default=8)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=4.0)
    p.add_argument("--source", choices=["file", "rtsp"], default="file")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ocrgan-bench-"))
    checkpoint = args.checkpoint
    if checkpoint is None and args.random is None and DEFAULT_CHECKPOINT.is_file():
        checkpoint = DEFAULT_CHECKPOINT
    if checkpoint is None:
        torch.manual_seed(0)
        checkpoint = tmp / f"{args.random or 'small'}-random.safetensors"
        save_checkpoint(OCRGANVideo(OCRGANConfig(**RANDOM[args.random or "small"])), checkpoint)
    base = dict(checkpoint=checkpoint, device=args.device, torch_threads=args.threads,
                registry_path=tmp / "streams.json", runtime="torch", **LOOPBACK_ONLY)  # batches are torch's
    host = ModelHost.load(Settings(_env_file=None, **base))
    cfg = host.model.cfg
    print(f"model {checkpoint.name}: {cfg.hw[0]}x{cfg.hw[1]}x{cfg.nc}, T={cfg.num_frames}, stride {host.stride}, "
          f"{sum(p.numel() for p in host.model.parameters()):,} params, {host.device}, {args.threads} thread(s); "
          f"{args.cameras} cameras at {args.fps:g} fps ({args.source}), {args.seconds:g}s per run, "
          f"{psutil.cpu_count()} CPUs")

    sizes = sorted({1, args.max_batch})
    before = {b: bare_speed(host, b) for b in sizes}
    server = None
    if args.source == "rtsp":
        server, targets = rtsp_targets(args.cameras, "240x160")
    else:
        targets = [StreamTarget(str(DEMO_CLIP), True) for _ in range(args.cameras)]
    runs = {}
    try:
        for b in (args.max_batch, 1):
            settings = Settings(_env_file=None, **base, max_batch=b)
            runs[b] = run_service(host, settings, targets, args.fps, args.warmup, args.seconds)
    finally:
        if server is not None:
            server.kill()
            server.wait()
    after = {b: bare_speed(host, b) for b in sizes}  # before and after, to average out other load
    bare = {b: (before[b][0] + after[b][0]) / 2 for b in sizes}
    bare_cpu = {b: (before[b][1] + after[b][1]) / 2 for b in sizes}

    print()
    print("| run | offered f/s | scored f/s | dropped f/s | latency p50 / p99 | mean batch | model busy "
          "| bare f/s (same batch) | service/bare | model CPU/frame vs bare | overhead |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for b, r in runs.items():
        near = min(bare, key=lambda k: abs(k - r["batch"]))
        print(f"| max batch {b} | {r['offered']:.0f} | {r['scored']:.1f} | {r['dropped']:.1f} | "
              f"{r['p50'] * 1000:.0f} / {r['p99'] * 1000:.0f} ms | {r['batch']:.2f} | {r['busy'] * 100:.0f}% | "
              f"{bare[near]:.1f} (batch {near}) | {r['scored'] / bare[near]:.2f} | "
              f"{r['model_cpu_per_frame'] / bare_cpu[near]:.2f} | {r['overhead'] * 100:.1f}% |")
    big, one = runs[args.max_batch], runs[1]
    print()
    print(f"bare model: {bare[1]:.1f} frames/s at batch 1, {bare[args.max_batch]:.1f} at batch {args.max_batch} "
          f"({bare[args.max_batch] / bare[1]:.2f}x)")
    print(f"batching gain in the service: {big['scored'] / one['scored']:.2f}x scored frames/s; "
          f"model time per frame {one['model_s_per_frame'] / big['model_s_per_frame']:.2f}x lower")
    saturated = [b for b, r in runs.items() if r["dropped"] > 0.5]
    print("saturated runs (frames dropped): " + (", ".join(f"max batch {b}" for b in saturated) or "none"))
    print("overhead = CPU of every other thread (decoding, preprocessing, windows, publishing) / CPU of the "
          "scorer thread; service/bare compares throughput (sensitive to other load on the machine)")
    print(f"load average during the run: {', '.join(f'{x:.2f}' for x in psutil.getloadavg())}")


if __name__ == "__main__":
    main()
