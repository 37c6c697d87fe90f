"""The cameras of this replica: the registry (through the backend), one worker per camera this replica
holds the lease on, and a coordinator loop that reconciles the two.

Every tick the coordinator announces the replica, reads the registry, renews its leases (a lost lease
stops that worker), takes free cameras while it holds fewer than its fair share (ceil(cameras /
replicas)), hands one camera back when it holds more, and shares its cameras' status. With the
embedded backend this reduces to: every registered camera runs here.

While the backend is unreachable every replica keeps the cameras it runs and takes none. When it
returns (its leases and heartbeats may have expired meanwhile), a replica only renews its own leases
for one lease period before taking or handing over cameras, so the replicas that were scoring a
camera all along get it back first and no camera is scored by two replicas at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from typing import Any

from pydantic import ValidationError

from service.api.schemas import StreamSpec, StreamView, validation_problems
from service.cameras.urls import StreamTarget, check_stream_url, redact
from service.cameras.worker import Publish, StreamState, StreamWorker
from service.errors import ServiceError
from service.inference.host import ModelHost
from service.inference.scorer import Scorer
from service.metrics import Metrics
from service.publishing.backends.base import Backend, BackendUnavailable
from service.settings import Settings

log = logging.getLogger("ocrgan.streams")


class StreamManager:
    def __init__(self, settings: Settings, host: ModelHost, scorer: Scorer, backend: Backend, metrics: Metrics,
                 publish: Publish) -> None:
        self.settings = settings
        self.host = host
        self.scorer = scorer
        self.backend = backend
        self.metrics = metrics
        self.publish = publish
        self.workers: dict[str, StreamWorker] = {}
        self.specs: dict[str, dict[str, Any]] = {}  # last registry read
        self.local: dict[str, tuple[StreamSpec, StreamTarget]] = {}  # built-in cameras, never persisted
        self.replicas = 1
        self.backend_ok = False
        self._outage = False  # the backend was unreachable at the last tick
        self._settle_until = 0.0  # monotonic time before which this replica only renews its own leases
        self.interval = min(1.0, settings.lease_seconds / 3)
        self.stale_after = max(3.0, settings.lease_seconds)  # a shared status older than this: owner gone
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ocrgan-coordinator", daemon=True)
        self._snapshot_at = 0.0

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.tick()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            workers = list(self.workers.values())
            for sid in list(self.workers):
                self._stop_worker(sid, "service shutting down", release=True)
        for w in workers:
            w.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._stop.is_set():
                try:
                    self.tick()
                except Exception:
                    log.exception("coordinator tick failed")

    # --- API -------------------------------------------------------------------------------------
    def validate(self, spec: StreamSpec, resolve: bool = True) -> StreamTarget:
        """Check a new camera against the URL policy and the model; raises ServiceError(422)."""
        cfg = self.host.model.cfg
        if spec.stride is not None and not 1 <= spec.stride <= cfg.num_frames:
            raise ServiceError(422, f"stride must be in [1, {cfg.num_frames}] for this model")
        return check_stream_url(spec.url, self.settings, resolve)

    def add(self, spec: StreamSpec) -> StreamView:
        """Register a camera (URL already validated); 409 if the id is taken."""
        with self._lock:
            try:
                added = spec.id not in self.local and self.backend.add_spec(spec.model_dump())
            except BackendUnavailable as e:
                raise ServiceError(503, f"backend unavailable: {e}") from e
            if not added:
                raise ServiceError(409, f"stream {spec.id!r} already exists")
            log.info("stream %s added: %s", spec.id, redact(spec.url))
            self.tick()
            return self.view(spec.id) or StreamView(id=spec.id, url=redact(spec.url), state=StreamState.PENDING)

    def add_local(self, spec: StreamSpec, target: StreamTarget) -> None:
        """A built-in camera of this process (the demo): trusted target, not persisted, not shared."""
        with self._lock:
            self.local[spec.id] = (spec, target)
            self._start_worker(spec, target)

    def remove(self, stream_id: str) -> bool:
        with self._lock:
            if stream_id in self.local:
                del self.local[stream_id]
                self._stop_worker(stream_id, "deleted", release=False)
                self.metrics.remove_stream(stream_id)
                self.backend.forget(stream_id)
                return True
            try:
                known = self.backend.load_specs()
                if stream_id not in known:
                    return False
                self.backend.delete_spec(stream_id)
            except BackendUnavailable as e:
                raise ServiceError(503, f"backend unavailable: {e}") from e
            self.specs.pop(stream_id, None)
            if stream_id in self.workers:
                self._stop_worker(stream_id, "deleted", release=True)
            self.metrics.remove_stream(stream_id)
            with contextlib.suppress(BackendUnavailable):
                self.backend.forget(stream_id)
            log.info("stream %s deleted", stream_id)
            return True

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(set(self.specs) | set(self.local) | set(self.workers))

    def view(self, stream_id: str) -> StreamView | None:
        with self._lock:
            worker = self.workers.get(stream_id)
            spec = self.specs.get(stream_id)
        if worker is not None:
            return worker.view()
        if spec is None:
            return None
        shared = self._shared_view(stream_id)
        fresh = shared is not None and time.time() - (shared.updated_at or 0) < self.stale_after
        if fresh and shared.state != StreamState.STOPPED:
            return shared
        stride = spec.get("stride") or self.host.camera_stride
        return StreamView(id=stream_id, url=redact(spec["url"]), state=StreamState.PENDING, replica=None,
                          fps=spec.get("fps") or self.settings.stream_fps, stride=stride,
                          scoring=self.host.scoring(stride),
                          calibrate=spec.get("calibrate", StreamSpec.model_fields["calibrate"].default))

    def _shared_view(self, stream_id: str) -> StreamView | None:
        """The view of a camera as the replica scoring it last shared it (None: none shared, or unreadable)."""
        try:
            shared = self.backend.get_status().get(stream_id)
        except BackendUnavailable:
            return None
        if shared is None:
            return None
        try:
            return StreamView.model_validate(shared)
        except ValidationError as e:
            log.warning("stream %s: its shared status is refused (%s)", stream_id, validation_problems(e))
            return None

    def views(self) -> list[StreamView]:
        return [v for sid in self.ids() if (v := self.view(sid)) is not None]

    def snapshot(self, stream_id: str) -> bytes | None:
        worker = self.workers.get(stream_id)
        if worker is not None:
            return worker.snapshot()
        try:
            return self.backend.get_snapshot(stream_id)
        except BackendUnavailable:
            return None

    # --- reconciliation --------------------------------------------------------------------------
    def tick(self) -> None:
        with self._lock:
            try:
                self.replicas = max(1, self.backend.heartbeat())
                self.specs = self.backend.load_specs()
                self.backend_ok = True
            except BackendUnavailable as e:
                if self.backend_ok:
                    log.warning("backend unavailable, cameras keep running: %s", e)
                self.backend_ok = False
                self._outage = True
                return
            if self._outage:
                self._outage = False
                self._settle_until = time.monotonic() + self.settings.lease_seconds
                log.info("backend reachable again: renewing this replica's %d cameras before taking others",
                         len(self._shared_workers()))
            self._reconcile()
        self._share()

    def _reconcile(self) -> None:
        for sid, worker in list(self.workers.items()):
            if sid in self.local:
                continue
            spec = self.specs.get(sid)
            if spec is None:
                self._stop_worker(sid, "deleted", release=True)
                self.metrics.remove_stream(sid)
            elif spec != worker.spec.model_dump():
                self._stop_worker(sid, "registry entry changed", release=False)
            elif not self._claim(sid):
                log.warning("stream %s: lease lost to another replica; stopping here", sid)
                self._stop_worker(sid, "lease lost", release=False)
        if time.monotonic() < self._settle_until:
            return  # just after an outage: the others renew theirs first
        share = math.ceil(len(self.specs) / self.replicas)
        for sid in sorted(self.specs):
            if len(self._shared_workers()) >= share:
                break
            if sid not in self.workers and self._claim(sid):
                self._start_registered(sid)
        excess = len(self._shared_workers()) - share
        if excess > 0 and self.replicas > 1:
            sid = max(self._shared_workers(), key=lambda s: self.workers[s].started_at)
            log.info("stream %s: handing over (holding %d cameras, fair share %d)", sid, excess + share, share)
            self._stop_worker(sid, "handed over to another replica", release=True)

    def _shared_workers(self) -> list[str]:
        return [sid for sid in self.workers if sid not in self.local]

    def _claim(self, sid: str) -> bool:
        try:
            return self.backend.claim(sid)
        except BackendUnavailable:
            return sid in self.workers  # keep what we run; take nothing new

    def _start_registered(self, sid: str) -> None:
        try:
            spec = StreamSpec.model_validate(self.specs[sid])
            # the registry may have been edited by hand; a name that does not resolve now (DNS down) is the
            # worker's to report and retry, not a reason to leave the camera unstarted
            target = self.validate(spec, resolve=False)
        except (ValueError, ServiceError) as e:
            log.error("stream %s: registry entry refused: %s", sid, redact(str(e)))
            self.backend.release(sid)
            return
        self._start_worker(spec, target)

    def _start_worker(self, spec: StreamSpec, target: StreamTarget) -> None:
        worker = StreamWorker(spec, target, self.settings, self.host, self.scorer, self.metrics, self.publish,
                              self.backend.replica_id)
        self.workers[spec.id] = worker
        self.metrics.streams.set(len(self.workers))
        worker.start()

    def _stop_worker(self, sid: str, reason: str, release: bool) -> None:
        worker = self.workers.pop(sid, None)
        self.metrics.streams.set(len(self.workers))
        if worker is None:
            return
        worker.stop(reason)
        if release:
            with contextlib.suppress(BackendUnavailable):
                self.backend.release(sid)

    def _share(self) -> None:
        """Publish the status (and now and then the snapshot) of this replica's cameras to the backend."""
        with self._lock:
            workers = {sid: w for sid, w in self.workers.items() if sid not in self.local}
        if not workers or not self.backend.shared:
            return
        try:
            self.backend.put_status({sid: w.view().model_dump(mode="json") for sid, w in workers.items()})
            if time.monotonic() - self._snapshot_at >= 2.0:
                self._snapshot_at = time.monotonic()
                for sid, w in workers.items():
                    jpeg = w.snapshot()
                    if jpeg is not None:
                        self.backend.put_snapshot(sid, jpeg)
        except BackendUnavailable:
            pass
