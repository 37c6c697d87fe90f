"""An uploaded clip scored inside the scorer thread, one batch at a time, between camera batches.

The caller's thread decodes and preprocesses frames into a bounded queue; the scorer thread advances
model.iter_clip_scores over them only when a whole batch of frames is waiting, so a slow decode never
stalls the cameras and the model has a single owner.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import torch

from model import OCRGANVideo, WindowScores, iter_clip_scores

_END = object()


class ClipCancelled(Exception):
    """The caller gave up on the clip (bad input, shutdown)."""


class ClipJob:
    def __init__(self, model: OCRGANVideo, stride: int, batch: int, heatmaps: bool, amp: bool,
                 reduce: Callable[[WindowScores], WindowScores] | None = None) -> None:
        self.need = batch * stride  # frames one forward pass may consume
        self.reduce = reduce  # applied to each result as it is made
        self.frames: queue.Queue = queue.Queue(maxsize=2 * self.need)
        self.produced_all = False
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.results: list[WindowScores] = []
        self._gen = iter_clip_scores(model, self._consume(), stride, batch, heatmaps, amp)

    # --- caller's side ---------------------------------------------------------------------------
    def put(self, frame: torch.Tensor, timeout: float = 0.5) -> bool:
        try:
            self.frames.put(frame, timeout=timeout)
            return True
        except queue.Full:
            return False

    def end(self, timeout: float = 0.5) -> bool:
        """Mark the last frame; False if the queue stayed full for `timeout` (call again)."""
        self.produced_all = True  # from now on the scorer drains the queue without waiting for a batch
        return self.put(_END, timeout)  # type: ignore[arg-type]

    def cancel(self) -> None:
        self.cancelled.set()

    # --- scorer's side ---------------------------------------------------------------------------
    def ready(self) -> bool:
        """A step cannot block on the caller: a batch of frames is queued, or all of them are."""
        return self.cancelled.is_set() or self.produced_all or self.frames.qsize() >= self.need

    def step(self) -> None:
        """Advance by one result (a forward pass when the previous batch is used up)."""
        try:
            if self.cancelled.is_set():
                raise ClipCancelled()
            scores = next(self._gen)
            self.results.append(self.reduce(scores) if self.reduce else scores)
        except StopIteration:
            self.finished.set()
        except BaseException as e:
            self.error = e
            self._gen.close()
            self.finished.set()

    def _consume(self) -> Iterator[torch.Tensor]:
        while True:
            try:
                item = self.frames.get(timeout=0.5)
            except queue.Empty:
                if self.cancelled.is_set():
                    raise ClipCancelled() from None
                continue
            if item is _END:
                return
            yield item
