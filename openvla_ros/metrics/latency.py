"""Latency and rate bookkeeping for status messages (pure, thread-safe)."""

from __future__ import annotations

from collections import deque
import math
import threading

import numpy as np

__all__ = ['LatencyStats']


class LatencyStats:
    """Sliding-window latency percentiles and event rate.

    Args:
        window: number of most recent samples kept.
    """

    def __init__(self, window: int = 100) -> None:
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self._latencies: deque[float] = deque(maxlen=window)
        self._times: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, latency_s: float, now: float) -> None:
        """Records one event that took latency_s and finished at time now [s]."""
        with self._lock:
            self._latencies.append(float(latency_s))
            self._times.append(float(now))

    def percentile(self, q: float) -> float:
        """The q-th percentile of the window's latencies [s]; NaN when empty."""
        with self._lock:
            if not self._latencies:
                return math.nan
            return float(np.percentile(np.asarray(self._latencies), q))

    def rate_hz(self) -> float:
        """Events per second over the window; NaN with fewer than two events."""
        with self._lock:
            if len(self._times) < 2 or self._times[-1] <= self._times[0]:
                return math.nan
            return (len(self._times) - 1) / (self._times[-1] - self._times[0])
