"""One model worker thread fed by a bounded queue, with optional micro-batching.

Requests ``submit`` an item and wait on the returned ``concurrent.futures.Future``. The thread
takes the oldest item and, with ``max_batch > 1``, up to ``max_batch - 1`` more that are already
waiting, and hands them to ``run_batch`` in one call. When ``max_queue`` items are waiting,
``submit`` raises :class:`QueueFull` at once (the server answers 503 with ``Retry-After``).

A waiter that gives up (its client disconnected) calls :meth:`InferenceWorker.abandon`: an item
that has not started is taken out of the queue and never reaches ``run_batch`` (counted in
``dropped``). :meth:`InferenceWorker.drain` starts a bounded shutdown: no new items, the waiting
ones run until a deadline, those still waiting then fail with :class:`WorkerStopped`.
"""

import collections
import logging
import math
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Deque, List, Optional

__all__ = ["InferenceWorker", "QueueFull", "WorkerStopped"]

logger = logging.getLogger(__name__)

_POLL_S = 0.1  # how often the idle thread looks at the stop and drain flags


class QueueFull(RuntimeError):
    """The queue holds ``max_queue`` items; ``retry_after`` (s) estimates when one will be free."""

    def __init__(self, max_queue: int, retry_after: int):
        super().__init__(
            f"the model queue is full ({max_queue} requests waiting); retry after {retry_after} s"
        )
        self.max_queue, self.retry_after = max_queue, retry_after


class WorkerStopped(RuntimeError):
    """The worker is not running (not started yet, shutting down, or shut down)."""


@dataclass
class _Job:
    item: Any
    future: Future


class InferenceWorker:
    """Runs ``run_batch`` on a single thread; at most ``max_queue`` items wait.

    ``run_batch(items)`` returns one result per item, in order; a result that is an
    ``Exception`` is raised to that item's waiter only. If ``run_batch`` raises, every item of the
    batch gets the exception; the thread goes on with the next items.

    Counters (read by ``/health``): ``processed`` items given to ``run_batch``, ``failed`` of them
    ended in an exception, ``batches`` calls of ``run_batch``, ``dropped`` items abandoned by
    their waiter before they started, ``refused_at_shutdown`` items failed by a drain deadline.
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
        self._jobs: Deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        # monotonic deadline of a drain; set by drain() with a plain assignment (signal-safe)
        self._drain_deadline: Optional[float] = None
        self._drain_timeout = 0.0
        self._thread: Optional[threading.Thread] = None
        self._item_seconds = 1.0  # running mean of the time per item (for Retry-After)
        self.processed = 0
        self.failed = 0
        self.batches = 0
        self.dropped = 0
        self.refused_at_shutdown = 0

    # ------------------------------------------------------------------------------------------
    # life cycle

    def start(self) -> None:
        if self.alive:
            return
        self._stop.clear()
        self._drain_deadline = None
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def drain(self, timeout: float) -> None:
        """Begin a bounded shutdown: :meth:`submit` refuses new items at once; waiting items still
        run, in order, until ``timeout`` seconds from now; then those not started fail with
        :class:`WorkerStopped` and the thread ends (it ends earlier when the queue is empty).

        Safe to call from a signal handler (it only assigns an attribute); a second call keeps
        the first deadline."""
        if self._drain_deadline is None:
            self._drain_timeout = max(0.0, float(timeout))
            self._drain_deadline = time.monotonic() + self._drain_timeout

    @property
    def draining(self) -> bool:
        return self._drain_deadline is not None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the batch in progress (waiting up to ``timeout`` s for it); items still
        waiting fail with WorkerStopped."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._fail_waiting("the server is shutting down")

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for the thread to end (after :meth:`drain` or :meth:`stop`)."""
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        """Items waiting (not counting the batch in progress nor abandoned items)."""
        with self._cond:
            return sum(1 for job in self._jobs if not job.future.cancelled())

    @property
    def full(self) -> bool:
        return self.queued >= self.max_queue

    def retry_after(self) -> int:
        """Seconds (>= 1) until the queue has room, from the mean time per item."""
        per_item = self._item_seconds
        return max(1, math.ceil(per_item * (self.queued + 1) / self.max_batch))

    # ------------------------------------------------------------------------------------------
    # requests

    def submit(self, item: Any) -> Future:
        """Queue ``item``; the future gets its result. Raises QueueFull or WorkerStopped."""
        if not self.alive:
            raise WorkerStopped("the model worker is not running")
        if self.draining:
            raise WorkerStopped("the server is shutting down")
        future: Future = Future()
        with self._cond:
            self._purge_cancelled()
            if len(self._jobs) >= self.max_queue:
                full = True
            else:
                full = False
                self._jobs.append(_Job(item, future))
                self._cond.notify()
        if full:
            raise QueueFull(self.max_queue, self.retry_after())
        return future

    def abandon(self, future: Future, shutdown: bool = False) -> bool:
        """The waiter of ``future`` gives up: its client is gone (``dropped`` + 1) or, with
        ``shutdown``, the drain deadline has passed (``refused_at_shutdown`` + 1). Returns True
        when the item had not started: it is taken out of the queue and never runs; False when it
        runs or ran already (its result is then discarded by the caller)."""
        if not future.cancel():
            return False
        with self._cond:
            kept = [job for job in self._jobs if job.future is not future]
            if len(kept) < len(self._jobs):
                self._jobs = collections.deque(kept)
                if shutdown:
                    self.refused_at_shutdown += 1
                else:
                    self.dropped += 1
        return True

    @property
    def past_drain_deadline(self) -> bool:
        """A drain has begun and its deadline has passed: waiting items will not start."""
        deadline = self._drain_deadline
        return deadline is not None and time.monotonic() >= deadline

    def _purge_cancelled(self) -> None:
        """Remove cancelled items from the queue, counting them (call with ``_cond`` held)."""
        if any(job.future.cancelled() for job in self._jobs):
            kept = [job for job in self._jobs if not job.future.cancelled()]
            self.dropped += len(self._jobs) - len(kept)
            self._jobs = collections.deque(kept)

    def _fail_waiting(self, message: str) -> int:
        with self._cond:
            jobs, self._jobs = list(self._jobs), collections.deque()
        failed = 0
        for job in jobs:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(WorkerStopped(message))
                failed += 1
        with self._cond:
            self.dropped += len(jobs) - failed
        return failed

    # ------------------------------------------------------------------------------------------
    # the thread

    def _next_batch(self) -> Optional[List[_Job]]:
        """The next items to run ([] when none is waiting now); None when the thread must end."""
        with self._cond:
            if not self._jobs and not self._stop.is_set() and not self.draining:
                self._cond.wait(_POLL_S)
            if self._stop.is_set():
                return None
            deadline = self._drain_deadline
            if deadline is not None and (not self._jobs or time.monotonic() >= deadline):
                return None
            batch = []
            while self._jobs and len(batch) < self.max_batch:
                job = self._jobs.popleft()
                # a waiter that gave up between its abandon() and now is dropped here
                if job.future.set_running_or_notify_cancel():
                    batch.append(job)
                else:
                    self.dropped += 1
            return batch

    def _loop(self) -> None:
        announced = False
        while True:
            if self.draining and not announced:
                announced = True
                logger.info(
                    "shutdown: %d queued request(s) may still run for up to %.1f s",
                    self.queued,
                    self._drain_timeout,
                )
            batch = self._next_batch()
            if batch is None:
                break
            if batch:
                self._run(batch)
        if self.draining and not self._stop.is_set():
            failed = self._fail_waiting(
                "the server is shutting down: this request did not reach the model within the "
                "shutdown timeout"
            )
            with self._cond:
                self.refused_at_shutdown += failed
            if self.refused_at_shutdown:
                logger.warning(
                    "shutdown: %d queued request(s) not started within the shutdown timeout "
                    "answered 503",
                    self.refused_at_shutdown,
                )

    def _run(self, batch: List[_Job]) -> None:
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
        with self._cond:  # counted before the waiters learn the results
            self.processed += len(batch)
            self.failed += sum(isinstance(result, Exception) for result in results)
            self.batches += 1
            self._item_seconds = 0.8 * self._item_seconds + 0.2 * elapsed / len(batch)
        for job, result in zip(batch, results):
            if isinstance(result, Exception):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
