"""Fixtures of the remote-inference tests: the tiny policy and real servers on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib

import pytest
from remote_helpers import RunningServer, start_server

from openvla_ros.remote.protocol import PolicyLike
from openvla_ros.remote.server import ServerSettings


@pytest.fixture(scope='session')
def policy(tiny_model_dir):
    """The tiny checkpoint as a float32 CPU policy."""
    from openvla_ros.model import OpenVLAPolicy

    return OpenVLAPolicy.load(str(tiny_model_dir))


@pytest.fixture(scope='module')
def server(policy) -> Iterator[RunningServer]:
    """A shared server without a token, batching up to 8 requests."""
    running = start_server(policy, ServerSettings(max_batch=8, max_wait_ms=5))
    yield running
    running.stop()


@pytest.fixture
def serve() -> Iterator[Callable[..., RunningServer]]:
    """Start servers for one test; all are stopped at its end."""
    started: list[RunningServer] = []

    def _start(
        policy: PolicyLike | None, settings: ServerSettings | None = None, port: int = 0
    ) -> RunningServer:
        running = start_server(policy, settings, port)
        started.append(running)
        return running

    yield _start
    for running in started:
        with contextlib.suppress(AssertionError):
            running.stop()
