"""One model worker thread fed by a bounded queue, with optional micro-batching.

Requests ``submit`` an item and wait on the returned ``concurrent.futures.Future``. The thread
takes the oldest item and, with ``max_batch > 1``, up to ``max_batch - 1`` more that are already
waiting, and hands them to ``run_batch`` in one call. When ``max_queue`` items are waiting,
``submit`` raises :class:`QueueFull` at once (the server answers 503 with ``Retry-After``).
"""

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

__all__ = ["InferenceWorker", "QueueFull", "WorkerStopped"]

logger = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The queue holds ``max_queue`` items; ``retry_after`` (s) estimates when one will be free."""

    def __init__(self, max_queue: int, retry_after: int):
        super().__init__(
            f"the model queue is full ({max_queue} requests waiting); retry after {retry_after} s"
        )
        self.max_queue, self.retry_after = max_queue, retry_after


class WorkerStopped(RuntimeError):
    """The worker is not running (not started yet, or shut down)."""


@dataclass
class _Job:
    item: Any
    future: Future
    queued_at: float


class InferenceWorker:
    """Runs ``run_batch`` on a single thread; at most ``max_queue`` items wait.

    ``run_batch(items)`` returns one result per item, in order; a result that is an
    ``Exception`` is raised to that item's waiter only. If ``run_batch`` raises, every item of the
    batch gets the exception; the thread goes on with the next items.
    """

    def __init__(
        self,
        run_batch: Callable[[List[Any]], List[Any]],
        *,
        max_queue: int = 8,
        max_batch: int = 1,
        name: str = "bodyparts-model",
    ):
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run_batch = run_batch
        self.max_queue, self.max_batch, self.name = max_queue, max_batch, name
        self._queue: "queue.Queue[_Job]" = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._item_seconds = 1.0  # running mean of the time per item (for Retry-After)
        self.processed = 0  # items done (results and errors)
        self.failed = 0  # items that ended in an exception
        self.batches = 0  # calls of run_batch

    # ------------------------------------------------------------------------------------------
    # life cycle

    def start(self) -> None:
        if self.alive:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the batch in progress; items still waiting fail with WorkerStopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(WorkerStopped("the server is shutting down"))

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        """Items waiting (not counting the batch in progress)."""
        return self._queue.qsize()

    @property
    def full(self) -> bool:
        return self._queue.full()

    def retry_after(self) -> int:
        """Seconds (>= 1) until the queue has room, from the mean time per item."""
        with self._lock:
            per_item = self._item_seconds
        return max(1, math.ceil(per_item * (self._queue.qsize() + 1) / self.max_batch))

    # ------------------------------------------------------------------------------------------
    # requests

    def submit(self, item: Any) -> Future:
        """Queue ``item``; the future gets its result. Raises QueueFull or WorkerStopped."""
        if not self.alive:
            raise WorkerStopped("the model worker is not running")
        future: Future = Future()
        try:
            self._queue.put_nowait(_Job(item, future, time.perf_counter()))
        except queue.Full:
            raise QueueFull(self.max_queue, self.retry_after()) from None
        return future

    # ------------------------------------------------------------------------------------------
    # the thread

    def _next_batch(self) -> List[_Job]:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        # waiters that gave up (client gone, cancelled) are dropped
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            start = time.perf_counter()
            try:
                results = self._run_batch([job.item for job in batch])
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"run_batch returned {len(results)} results for {len(batch)} items"
                    )
            except Exception as e:  # noqa: BLE001  (any model error goes to the waiters)
                logger.exception("model batch of %d failed", len(batch))
                results = [e] * len(batch)
            elapsed = time.perf_counter() - start
            with self._lock:  # counted before the waiters learn the results
                self.processed += len(batch)
                self.failed += sum(isinstance(result, Exception) for result in results)
                self.batches += 1
                self._item_seconds = 0.8 * self._item_seconds + 0.2 * elapsed / len(batch)
            for job, result in zip(batch, results):
                if isinstance(result, Exception):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
