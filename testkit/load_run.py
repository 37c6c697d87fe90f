"""A load run against `ocrgan serve` in its own process: N cameras on the loopback RTSP server, clips
uploaded to POST /score without pause by concurrent clients, one WebSocket client reading every
message and one that never reads. The service's memory, threads and file descriptors are sampled,
/metrics is scraped every second, and the log is read at the end.

Used by tests/service/test_load.py (a short run and a 10-minute soak) and scripts/soak.py (any length), both
held to the bounds of `check`.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.sync.client import connect

from model.checkpoint import read_header
from service.settings import Settings
from testkit.proc_stats import MB, ProcessSampler, Sample
from testkit.scrape import samples
from testkit.servers import AppProcess, rtsp_server, wait_for
from testkit.ws_recorder import WsRecorder

RSS_GROWTH_MB = 32  # start to end of the measured period
RSS_SPIKE_MB = 200  # start to the highest sample
# Threads come and go with the load: each upload being decoded holds FFmpeg's decoder threads, and anyio's
# worker threads retire after 10 s idle. Bounded: per uploader (decoder threads + a worker) plus slack.
# A leak shows as growth of the floor that the transient threads come and go above: the fewest threads in the
# last third of the run may not exceed the fewest in the first third by more than THREAD_GROWTH.
THREADS_PER_UPLOAD = 6
THREAD_GROWTH = 3
FD_SPREAD = 16
MAX_PENDING = Settings.model_fields["max_pending_windows"].default
MAX_CLIPS = Settings.model_fields["max_concurrent_clips"].default


@dataclass
class LoadConfig:
    checkpoint: Path
    clip: Path  # what the uploaders send
    cameras: int = 8
    fps: int = 25  # of the RTSP server
    sample_fps: float | None = None  # each camera's sampling rate; None = fps (every frame is scored)
    size: str = "240x160"
    uploaders: int = 2
    seconds: float = 75.0  # measured, after the warm-up
    warmup: float = 15.0
    env: dict[str, str] = field(default_factory=dict)  # more OCRGAN_* settings


@dataclass
class LoadReport:
    seconds: float
    cameras: int
    rss_mb: tuple[float, float, float]  # start, end, max after the warm-up (medians of the first/last 10%)
    threads: tuple[int, int]  # min, max after the warm-up
    thread_floors: tuple[int, int]  # the fewest threads in the first and in the last third of the measured period
    fds: tuple[int, int]
    warmup_threads: int
    warmup_fds: int
    decoded: int  # frames, all cameras, during the measured period
    scored: int
    dropped: int
    unaccounted: int  # accepted frames neither scored nor dropped at the end (waiting for their window)
    queue_max: float  # ocrgan_scorer_queue_windows, the most seen
    uploads_ok: int
    uploads_failed: list[str]
    upload_seconds: list[float]
    ws_messages: int
    ws_dropped: float
    states: dict[str, str]
    by_frames: int  # cameras scored frame by frame (each may have as many frames queued as its windows hold)
    log_errors: list[str]
    log_warnings: list[str]

    def lines(self) -> list[str]:
        up = sorted(self.upload_seconds) or [float("nan")]
        return [
            f"{self.cameras} cameras, {self.seconds:.0f} s measured after the warm-up",
            f"RSS MB: start {self.rss_mb[0]:.0f}, end {self.rss_mb[1]:.0f}, max {self.rss_mb[2]:.0f}",
            f"threads: {self.threads[0]}-{self.threads[1]} (warm-up end {self.warmup_threads}; fewest in the first "
            f"third {self.thread_floors[0]}, in the last {self.thread_floors[1]}); "
            f"fds: {self.fds[0]}-{self.fds[1]} (warm-up end {self.warmup_fds})",
            f"frames: decoded {self.decoded}, scored {self.scored} ({self.scored / self.seconds:.1f}/s), "
            f"dropped {self.dropped} ({100 * self.dropped / max(self.scored + self.dropped, 1):.2f}%), "
            f"waiting at the end {self.unaccounted}; scorer queue max {self.queue_max:.0f} jobs ({self.by_frames} "
            f"camera(s) frame by frame)",
            f"uploads: {self.uploads_ok} scored ({self.uploads_ok / self.seconds:.2f}/s, median "
            f"{statistics.median(up):.2f} s), {len(self.uploads_failed)} failed",
            f"WebSocket: {self.ws_messages} messages to the reader, {self.ws_dropped:.0f} dropped for the stalled one",
            f"states: {sorted(set(self.states.values()))}; log: {len(self.log_errors)} errors, "
            f"{len(self.log_warnings)} warnings",
        ]


class Uploaders:
    """Clients posting the same clip to /score again and again until stopped."""

    def __init__(self, url: str, clip: Path, n: int) -> None:
        self.data = clip.read_bytes()
        self.url = url
        self.ok: list[tuple[float, float]] = []  # (finished at, seconds)
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    r = client.post("/score", files={"file": ("clip.mp4", self.data, "video/mp4")})
                except httpx.HTTPError as e:
                    self.failed.append(f"{type(e).__name__}: {e}")
                    continue
                if r.status_code == 200:
                    self.ok.append((time.monotonic(), time.monotonic() - t0))
                else:
                    self.failed.append(f"{r.status_code}: {r.text[:200]}")

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=130)


def _totals(app: AppProcess) -> dict[str, int]:
    views = app.client.get("/streams").json()["streams"]
    return {k: sum(v.get(f"frames_{k}", 0) for v in views) for k in ("decoded", "skipped", "scored", "dropped")}


def _flat(series: list[Sample], attr: str, share: float = 0.1) -> tuple[float, float, float]:
    """(median of the first `share`, median of the last `share`, max) of one sampled quantity."""
    values = [getattr(s, attr) for s in series]
    k = max(1, int(len(values) * share))
    return statistics.median(values[:k]), statistics.median(values[-k:]), max(values)


def _log_lines(log: Path, level: str) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if f" {level} " in line or (level == "ERROR" and line.startswith("Traceback"))]


def run_load(cfg: LoadConfig, tmp: Path) -> LoadReport:
    mounts = [f"c{i}" for i in range(cfg.cameras)]
    server = rtsp_server(tmp, mounts=",".join(mounts), size=cfg.size, fps=cfg.fps)
    server.start()
    env = {"OCRGAN_CHECKPOINT": str(cfg.checkpoint), "OCRGAN_ALLOW_LOOPBACK": "true", "OCRGAN_DEVICE": "cpu",
           "OCRGAN_REGISTRY_PATH": str(tmp / "streams.json"), "OCRGAN_UPLOAD_DIR": str(tmp),
           "OCRGAN_ONNX_CACHE": str(tmp / "onnx"), **cfg.env}
    app = AppProcess(env, tmp / "service.log")
    # the steady state: a first start exports the graphs of ONNX Runtime (the default on a CPU) in the background
    wait_for(lambda: not app.client.get("/model").json()["exporting"], 600, what="the ONNX Runtime graphs")
    sampler = ProcessSampler(app.pid, interval=0.25)
    uploaders = None
    queue_max = 0.0
    try:
        for m in mounts:
            spec = {"id": m, "url": f"rtsp://127.0.0.1:{server.port}/{m}", "fps": cfg.sample_fps or cfg.fps}
            r = app.client.post("/streams", json=spec)
            assert r.status_code == 201, r.text
        with WsRecorder(f"ws://127.0.0.1:{app.port}/ws/streams", keep=False) as reader, \
                connect(f"ws://127.0.0.1:{app.port}/ws/streams", max_queue=1, ping_interval=None):  # never reads
            wait_for(lambda: all(v["state"] == "running" for v in app.client.get("/streams").json()["streams"]),
                     60, what="every camera running")
            uploaders = Uploaders(app.url, cfg.clip, cfg.uploaders)
            time.sleep(cfg.warmup)
            start, start_wall, first = sampler.elapsed(), time.monotonic(), _totals(app)
            warm = sampler.now()
            while sampler.elapsed() - start < cfg.seconds:
                time.sleep(1.0)
                page = samples(app.client.get("/metrics").text)
                queue_max = max(queue_max, page.get(("ocrgan_scorer_queue_windows", frozenset()), 0.0))
            seconds = sampler.elapsed() - start
            last = _totals(app)
            views = app.client.get("/streams").json()["streams"]
            ws_dropped = samples(app.client.get("/metrics").text).get(("ocrgan_ws_dropped_total", frozenset()), 0.0)
            uploads = [d for t, d in uploaders.ok if t >= start_wall]
            uploaders.stop()
            ws_messages = reader.count
    finally:
        if uploaders is not None:
            uploaders.stop()
        sampler.stop()
        app.stop()
        server.kill()
    series = sampler.since(start)
    accepted = {k: last[k] - first[k] for k in last}
    return LoadReport(
        seconds=seconds, cameras=cfg.cameras,
        rss_mb=tuple(v / MB for v in _flat(series, "rss")),
        threads=(min(s.threads for s in series), max(s.threads for s in series)),
        thread_floors=(min(s.threads for s in series[:max(len(series) // 3, 1)]),
                       min(s.threads for s in series[-max(len(series) // 3, 1):])),
        fds=(min(s.fds for s in series), max(s.fds for s in series)),
        warmup_threads=warm.threads, warmup_fds=warm.fds,
        decoded=accepted["decoded"], scored=accepted["scored"], dropped=accepted["dropped"],
        unaccounted=sum(v["frames_decoded"] - v["frames_skipped"] - v["frames_scored"] - v["frames_dropped"]
                        for v in views),
        queue_max=queue_max, uploads_ok=len(uploads), uploads_failed=list(uploaders.failed),
        upload_seconds=uploads, ws_messages=ws_messages, ws_dropped=ws_dropped,
        states={v["id"]: v["state"] for v in views},
        by_frames=sum(v["scoring"] == "frames" for v in views),
        log_errors=_log_lines(app.log, "ERROR"), log_warnings=_log_lines(app.log, "WARNING"),
    )


def clip_batch(cfg: LoadConfig) -> int:
    """The windows a clip being scored may have queued: the scorer's batch, by its rule, for this checkpoint."""
    import torch

    from model import load_checkpoint
    from service.inference.batch_size import batch_rule, window_gflop

    model = load_checkpoint(cfg.checkpoint)[0].eval()
    return batch_rule(torch.device("cpu"), window_gflop(model, model.cfg.stride))


def check(report: LoadReport, cfg: LoadConfig) -> None:
    """Assert the bounds of a load run (AssertionError names the one broken)."""
    stride = read_header(cfg.checkpoint)["config"]["stride"]
    print("\n" + "\n".join(report.lines()))
    assert report.uploads_failed == [] and report.uploads_ok > 0
    assert report.log_errors == []
    assert set(report.states.values()) == {"running"}
    assert report.scored > 0 and report.ws_messages > report.scored
    start, end, peak = report.rss_mb
    assert end - start <= RSS_GROWTH_MB and peak - start <= RSS_SPIKE_MB, report.rss_mb
    assert report.threads[1] - report.threads[0] <= cfg.uploaders * THREADS_PER_UPLOAD + 4, report.threads
    assert report.thread_floors[1] - report.thread_floors[0] <= THREAD_GROWTH, report.thread_floors
    assert report.fds[1] - report.fds[0] <= FD_SPREAD, report.fds
    # dropped frames are counted, never queued: the scorer holds at most MAX_PENDING windows per camera (or as many
    # frames, for a camera scored frame by frame) and a batch of each clip being scored, and every accepted frame is
    # scored, dropped, or waiting for its window
    cameras = (cfg.cameras - report.by_frames) * MAX_PENDING + report.by_frames * MAX_PENDING * stride
    assert report.queue_max <= cameras + min(cfg.uploaders, MAX_CLIPS) * clip_batch(cfg), report.queue_max
    assert report.unaccounted <= cfg.cameras * stride * (1 + MAX_PENDING)
