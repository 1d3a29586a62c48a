"""Dynamic batching: concurrent robots get their own answers, sharing model calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import time
from typing import Any

import numpy as np
import pytest
from remote_helpers import images, INSTRUCTIONS

from openvla_ros.remote.batching import Batcher, QueueFullError
from openvla_ros.remote.client import OpenVLAClient
from openvla_ros.remote.server import ServerSettings

ROBOTS, STEPS = 4, 3
KEYS = ('bridge_orig', 'fractal20220817_data')


def _run_robots(url: str, frames: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
    """ROBOTS threads, each sending STEPS requests one after the other (a robot waits for its
    action); returns the wall time and the actions in request order."""

    def robot(r: int) -> list[np.ndarray]:
        with OpenVLAClient(url, timeout_s=60, retries=0) as client:
            return [
                client.act(frames[r * STEPS + s], INSTRUCTIONS[r], KEYS[r % 2])
                for s in range(STEPS)
            ]

    start = time.perf_counter()
    with ThreadPoolExecutor(ROBOTS) as pool:
        results = list(pool.map(robot, range(ROBOTS)))
    return time.perf_counter() - start, [a for actions in results for a in actions]


def test_concurrent_robots_each_get_their_own_action_batched_and_unbatched(
    serve, policy, record_property
) -> None:
    frames = images(ROBOTS * STEPS, seed=7)
    expected = [
        policy.predict(frames[r * STEPS + s], INSTRUCTIONS[r], KEYS[r % 2]).action
        for r in range(ROBOTS)
        for s in range(STEPS)
    ]
    timings, histograms = {}, {}
    for name, max_batch in (('batched', 8), ('unbatched', 1)):
        running = serve(policy, ServerSettings(max_batch=max_batch, max_wait_ms=20))
        _run_robots(running.url, frames)  # warm-up (first-call costs)
        wall, actions = _run_robots(running.url, frames)
        for got, want in zip(actions, expected):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        snap = running.app.state.runtime.metrics.snapshot()
        timings[name] = wall
        histograms[name] = {k: v for k, v in snap['batch_size_histogram'].items() if v}
        running.stop()
    assert set(histograms['unbatched']) == {'1'}
    # Numbers for docs/remote.md (printed with -s; no timed assertion: CI machines vary).
    report = (
        f'{ROBOTS} robots x {STEPS} requests: batched {timings["batched"]:.2f} s '
        f'{histograms["batched"]}, unbatched {timings["unbatched"]:.2f} s'
    )
    record_property('batching', report)
    print(report)


class _FakePolicy:
    """Records batch sizes; the instruction 'boom' makes a whole batch raise (a bad input)."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict_batch(self, images: Any, instructions: Any, unnorm_keys: Any = None) -> list:
        self.batches.append(len(images))
        if 'boom' in instructions:
            raise ValueError('bad input: boom')
        return [f'{text}:{key}' for text, key in zip(instructions, unnorm_keys)]


def test_batcher_groups_waiting_requests_up_to_max_batch() -> None:
    fake = _FakePolicy()
    batcher = Batcher(fake, max_batch=3, max_wait_s=0.5)
    futures = [batcher.submit(np.zeros((2, 2, 3), np.uint8), f'i{n}', 'k') for n in range(5)]
    batcher.start()  # all five are already queued: 3 + 2, without waiting the 0.5 s
    results = [f.result(timeout=5) for f in futures]
    batcher.stop()
    assert [r.prediction for r in results] == [f'i{n}:k' for n in range(5)]
    assert fake.batches == [3, 2]
    assert [r.batch_size for r in results] == [3, 3, 3, 2, 2]


def test_batcher_fails_only_the_bad_request_of_a_batch() -> None:
    fake = _FakePolicy()
    batcher = Batcher(fake, max_batch=4, max_wait_s=0.5)
    texts = ['a', 'boom', 'c']
    futures = [batcher.submit(np.zeros((2, 2, 3), np.uint8), t, 'k') for t in texts]
    batcher.start()
    assert futures[0].result(timeout=5).prediction == 'a:k'
    with pytest.raises(ValueError, match='boom'):
        futures[1].result(timeout=5)
    assert futures[2].result(timeout=5).prediction == 'c:k'
    batcher.stop()
    assert fake.batches == [3, 1, 1, 1]


def test_batcher_refuses_requests_over_max_queue() -> None:
    batcher = Batcher(_FakePolicy(), max_batch=1, max_queue=2)
    image = np.zeros((2, 2, 3), np.uint8)
    batcher.submit(image, 'a', 'k')
    batcher.submit(image, 'b', 'k')
    with pytest.raises(QueueFullError, match='2 requests are already waiting'):
        batcher.submit(image, 'c', 'k')
    batcher.start()
    batcher.stop()


def test_batcher_rejects_a_zero_batch() -> None:
    with pytest.raises(ValueError, match='max_batch must be >= 1'):
        Batcher(_FakePolicy(), max_batch=0)
