"""Resident memory, threads and open file descriptors of a process, sampled in the background."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil

MB = 1024 * 1024


@dataclass
class Sample:
    t: float  # seconds since the sampler started
    rss: int  # bytes
    threads: int
    fds: int


class ProcessSampler:
    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[Sample] = []
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)
        self._thread.start()

    def now(self) -> Sample:
        with self.proc.oneshot():
            return Sample(time.monotonic() - self._t0, self.proc.memory_info().rss, self.proc.num_threads(),
                          self.proc.num_fds())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                s = self.now()
            except psutil.Error:  # the process is gone
                return
            with self._lock:
                self.samples.append(s)

    def since(self, t: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.t >= t]

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
