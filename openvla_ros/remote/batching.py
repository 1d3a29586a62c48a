"""Dynamic batching: requests from several robots share one model call.

On a GPU a batch of 8 frames costs about twice the time of one (docs/benchmarks.md: 120 vs 57 ms
on one H200), so the server queues the requests and one worker thread runs them together through
``policy.predict_batch``. The wait is bounded (``max_wait_s``, counted from the oldest request's
arrival, so a request never waits longer than that for company) and so is the batch
(``max_batch``). One model call runs at a time; each request gets its own answer through a
``concurrent.futures.Future``, which the asyncio server awaits with ``asyncio.wrap_future``. Plain
threads keep the worker independent of the web framework and testable on its own.
"""

from __future__ import annotations

from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
import logging
import queue
import threading
import time
from typing import Any

import numpy as np

from openvla_ros.remote.protocol import PolicyLike

__all__ = ['BatchedPrediction', 'Batcher', 'Metrics', 'QueueFullError']

_LOG = logging.getLogger('openvla_ros.remote')


class QueueFullError(RuntimeError):
    """More requests are waiting than ``max_queue``: the server is overloaded (HTTP 503)."""


@dataclass(frozen=True)
class BatchedPrediction:
    """One request's answer and how it was served."""

    prediction: Any  # openvla_ros.model.Prediction
    queue_s: float
    model_s: float
    batch_size: int


@dataclass
class _Job:
    image: np.ndarray
    instruction: str
    unnorm_key: str
    enqueued: float
    future: Future = field(default_factory=Future)


class Metrics:
    """Thread-safe counters and recent latencies (a window of the last ``window`` requests)."""

    def __init__(self, max_batch: int, window: int = 2048) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.max_batch = max_batch
        self.requests: Counter[tuple[str, int]] = Counter()  # (path, status) -> count
        self.batch_sizes: Counter[int] = Counter()
        self.batches = 0
        self.predictions = 0
        self.model_errors = 0
        self._latency: dict[str, deque[float]] = {
            stage: deque(maxlen=window) for stage in ('queue', 'model', 'total')
        }
        self.queue_depth = 0

    def record_request(self, path: str, status: int) -> None:
        with self._lock:
            self.requests[(path, status)] += 1

    def record_batch(self, size: int, model_s: float, queue_s: list[float]) -> None:
        with self._lock:
            self.batches += 1
            self.predictions += size
            self.batch_sizes[size] += 1
            for q in queue_s:
                self._latency['queue'].append(q)
                self._latency['model'].append(model_s)

    def record_total(self, total_s: float) -> None:
        with self._lock:
            self._latency['total'].append(total_s)

    def record_model_error(self) -> None:
        with self._lock:
            self.model_errors += 1

    def snapshot(self) -> dict[str, Any]:
        """Everything as plain JSON-able data (what ``GET /metrics`` returns)."""
        with self._lock:
            by_status: Counter[str] = Counter()
            by_path: Counter[str] = Counter()
            for (path, status), n in self.requests.items():
                by_status[str(status)] += n
                by_path[path] += n
            errors = sum(n for (_, status), n in self.requests.items() if status >= 400)
            latency = {}
            for stage, values in self._latency.items():
                data = np.asarray(values, dtype=np.float64)
                latency[stage] = {
                    'count': int(data.size),
                    'mean_s': float(data.mean()) if data.size else None,
                    'p50_s': float(np.percentile(data, 50)) if data.size else None,
                    'p90_s': float(np.percentile(data, 90)) if data.size else None,
                    'p99_s': float(np.percentile(data, 99)) if data.size else None,
                    'max_s': float(data.max()) if data.size else None,
                }
            return {
                'uptime_s': time.monotonic() - self.started,
                'requests_total': sum(self.requests.values()),
                'requests_by_path': dict(sorted(by_path.items())),
                'responses_by_status': dict(sorted(by_status.items())),
                'errors_total': errors,
                'model_errors_total': self.model_errors,
                'predictions_total': self.predictions,
                'batches_total': self.batches,
                'batch_size_histogram': {
                    str(size): self.batch_sizes.get(size, 0)
                    for size in range(1, self.max_batch + 1)
                },
                'queue_depth': self.queue_depth,
                'latency_window': latency,
            }


class Batcher:
    """Queue + one worker thread that runs queued requests in batches through the policy.

    Args:
        policy: anything with ``predict_batch(images, instructions, unnorm_keys)``.
        max_batch: most requests per model call (1 = no batching).
        max_wait_s: longest a request waits for others to join its batch.
        max_queue: most requests waiting; more are refused with `QueueFullError`.
        metrics: where batch sizes and latencies are recorded.
    """

    def __init__(
        self,
        policy: PolicyLike,
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.005,
        max_queue: int = 64,
        metrics: Metrics | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f'max_batch must be >= 1, got {max_batch}')
        if max_wait_s < 0:
            raise ValueError(f'max_wait_s must be >= 0, got {max_wait_s}')
        self.policy = policy
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.metrics = metrics or Metrics(max_batch)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name='openvla-batcher', daemon=True)
        self._stopping = False

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the running batch, fail the queued requests, end the worker."""
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout)
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError('server is shutting down'))

    def submit(self, image: np.ndarray, instruction: str, unnorm_key: str) -> Future:
        """Queue one request; the future resolves to a `BatchedPrediction` or the model's error.

        Raises:
            QueueFullError: ``max_queue`` requests are already waiting.
            RuntimeError: the batcher is stopping.
        """
        if self._stopping:
            raise RuntimeError('server is shutting down')
        if self._queue.qsize() >= self.max_queue:
            raise QueueFullError(f'{self.max_queue} requests are already waiting')
        job = _Job(image, instruction, unnorm_key, time.monotonic())
        self._queue.put(job)
        self.metrics.queue_depth = self._queue.qsize()
        return job.future

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        batch, stop = [first], False
        deadline = first.enqueued + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            batch.append(job)
        # A future cancelled while queued (its client went away) costs no model time.
        return [job for job in batch if job.future.set_running_or_notify_cancel()], stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            self.metrics.queue_depth = self._queue.qsize()
            if batch:
                self._execute(batch)
            if stop:
                return

    def _execute(self, batch: list[_Job]) -> None:
        start = time.monotonic()
        try:
            predictions = self.policy.predict_batch(
                [job.image for job in batch],
                [job.instruction for job in batch],
                [job.unnorm_key for job in batch],
            )
        except Exception as exc:  # noqa: BLE001 - each request must get an answer
            self.metrics.record_model_error()
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            # One bad input must not cost the other robots their answers: run them one by one.
            _LOG.warning('batch of %d failed (%s); retrying one by one', len(batch), exc)
            for job in batch:
                self._execute_alone(job)
            return
        model_s = time.monotonic() - start
        self.metrics.record_batch(len(batch), model_s, [start - job.enqueued for job in batch])
        for job, prediction in zip(batch, predictions):
            job.future.set_result(
                BatchedPrediction(prediction, start - job.enqueued, model_s, len(batch))
            )

    def _execute_alone(self, job: _Job) -> None:
        start = time.monotonic()
        try:
            (prediction,) = self.policy.predict_batch(
                [job.image], [job.instruction], [job.unnorm_key]
            )
        except Exception as exc:  # noqa: BLE001
            self.metrics.record_model_error()
            job.future.set_exception(exc)
            return
        model_s = time.monotonic() - start
        self.metrics.record_batch(1, model_s, [start - job.enqueued])
        job.future.set_result(BatchedPrediction(prediction, start - job.enqueued, model_s, 1))
