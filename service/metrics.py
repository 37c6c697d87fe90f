"""Prometheus metrics of one app, on its own registry (so several apps can live in one process)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class Metrics:
    def __init__(self, states: list[str]) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.states = states
        s = ["stream"]
        self.frames_decoded = Counter("ocrgan_frames_decoded_total", "Frames decoded per camera", s, registry=r)
        self.frames_skipped = Counter("ocrgan_frames_skipped_total",
                                      "Frames left out to sample a camera down to its target fps", s, registry=r)
        self.frames_dropped = Counter("ocrgan_frames_dropped_total",
                                      "Frames dropped because scoring fell behind", s, registry=r)
        self.frames_scored = Counter("ocrgan_frames_scored_total", "Frames given a published score", s, registry=r)
        self.inference = Histogram("ocrgan_inference_seconds", "One forward pass of the scorer",
                                   buckets=INFERENCE_BUCKETS, registry=r)
        self.batch_size = Histogram("ocrgan_batch_size", "Jobs (windows or camera frames) per forward pass",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.scorer_queue = Gauge("ocrgan_scorer_queue_windows",
                                  "Jobs waiting for the scorer: windows, and frames of cameras scored frame by frame "
                                  "(per camera at most max_pending_windows windows, or as many frames)",
                                  registry=r)
        self.latency = Histogram("ocrgan_end_to_end_latency_seconds", "Frame decoded to its score published",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.stream_up = Gauge("ocrgan_stream_up", "1 while a camera delivers frames", s, registry=r)
        self.stream_state = Gauge("ocrgan_stream_state", "1 for the camera's current state", [*s, "state"], registry=r)
        self.stream_fps = Gauge("ocrgan_stream_fps", "Measured frames per second accepted", s, registry=r)
        self.reconnects = Counter("ocrgan_stream_reconnects_total", "Reconnects of a camera", s, registry=r)
        self.anomaly_score = Gauge("ocrgan_anomaly_score", "Latest normalised score", s, registry=r)
        self.anomaly_threshold = Gauge("ocrgan_anomaly_threshold", "Threshold on the normalised scale", registry=r)
        self.anomaly_active = Gauge("ocrgan_anomaly_active", "1 during an anomaly event", s, registry=r)
        self.anomaly_events = Counter("ocrgan_anomaly_events_total", "Anomaly events started", s, registry=r)
        self.recalibrations = Counter("ocrgan_stream_recalibrations_total",
                                      "Times a camera learnt its units and level again after its warm-up", s,
                                      registry=r)
        self.score_requests = Counter("ocrgan_score_requests_total", "POST /score by HTTP status", ["status"],
                                      registry=r)
        self.publish_errors = Counter("ocrgan_publish_errors_total", "Failed publishes by backend", ["backend"],
                                      registry=r)
        self.publish_dropped = Counter("ocrgan_publish_dropped_total", "Messages dropped by a backend's buffer",
                                       ["backend"], registry=r)
        self.ws_dropped = Counter("ocrgan_ws_dropped_total", "Messages dropped for slow WebSocket clients",
                                  registry=r)
        self.ws_clients = Gauge("ocrgan_ws_clients", "Connected WebSocket clients", registry=r)
        self.streams = Gauge("ocrgan_streams", "Cameras scored by this replica", registry=r)
        self._per_stream = [self.frames_decoded, self.frames_skipped, self.frames_dropped, self.frames_scored,
                            self.stream_up, self.stream_fps, self.reconnects, self.anomaly_score, self.anomaly_active,
                            self.anomaly_events, self.recalibrations]

    def add_stream(self, stream: str) -> None:
        """Create a camera's series at zero, so rates and dashboards see it from the start."""
        for m in self._per_stream:
            m.labels(stream)

    def set_state(self, stream: str, state: str) -> None:
        for s in self.states:
            self.stream_state.labels(stream, s).set(1.0 if s == state else 0.0)
        self.stream_up.labels(stream).set(1.0 if state == "running" else 0.0)

    def remove_stream(self, stream: str) -> None:
        """Drop every label series of a deleted camera."""
        for m in self._per_stream:
            with contextlib.suppress(KeyError):
                m.remove(stream)
        for s in self.states:
            with contextlib.suppress(KeyError):
                self.stream_state.remove(stream, s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
