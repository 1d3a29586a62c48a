"""Helpers of the remote-inference tests: images, real uvicorn servers on loopback, a slow policy.

Servers run in a background thread on a socket bound here (127.0.0.1, free port), so a client can
connect as soon as ``start_server`` returns: the kernel queues connections until uvicorn accepts
them, and nothing has to poll for readiness.
"""

from __future__ import annotations

from dataclasses import dataclass
import socket
import threading
import time
from typing import Any

import numpy as np

from openvla_ros.remote.protocol import PolicyLike
from openvla_ros.remote.server import (
    bind_socket,
    create_app,
    limit_log_rate,
    ServerSettings,
    uvicorn_config,
)

INSTRUCTIONS = ('pick up the cup', 'open the top drawer', 'put the spoon on the towel', 'wipe')


def images(n: int, seed: int = 0, size: tuple[int, int] = (120, 160)) -> list[np.ndarray]:
    """n random RGB frames (different sizes from the model's 224 x 224 on purpose)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def read_until_closed(
    sock: socket.socket, limit_s: float, *, reset_is_close: bool = True
) -> bytes:
    """Everything the server sends until it closes the connection.

    A reset counts as a close (a server that closes with unread data resets the connection)
    unless reset_is_close is false. Raises AssertionError when the connection is still open after
    ``limit_s``.
    """
    sock.settimeout(limit_s)
    data = b''
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        raise AssertionError(f'still open after {limit_s} s; got {data!r}') from None
    except ConnectionResetError:
        if not reset_is_close:
            raise
    return data


@dataclass
class RunningServer:
    """A uvicorn server in a thread; ``stop()`` ends it like a killed process (port closed)."""

    url: str
    port: int
    app: Any
    server: Any
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        assert not self.thread.is_alive(), 'server did not stop'


def start_server(
    policy: PolicyLike | None, settings: ServerSettings | None = None, port: int = 0
) -> RunningServer:
    import uvicorn

    settings = settings or ServerSettings()
    sock = bind_socket('127.0.0.1', port)
    port = sock.getsockname()[1]
    app = create_app(policy, settings)
    # The production config (guarded protocol, timeouts); only the log level and the shutdown
    # grace differ.
    config = uvicorn_config(app, settings, log_level='warning', timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)

    def run() -> None:
        try:
            with limit_log_rate():
                server.run(sockets=[sock])
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f'uvicorn-{port}', daemon=True)
    thread.start()
    return RunningServer(f'http://127.0.0.1:{port}', port, app, server, thread)


class SlowPolicy:
    """A policy whose every model call takes ``delay_s`` longer (a busy or slow GPU)."""

    def __init__(self, policy: PolicyLike, delay_s: float) -> None:
        self._policy = policy
        self.delay_s = delay_s
        self.model_name = policy.model_name
        self.unnorm_keys = policy.unnorm_keys
        self.action_dim = policy.action_dim
        self.calls = 0

    def resolve_unnorm_key(self, key: str | None) -> str:
        return self._policy.resolve_unnorm_key(key)

    def predict_batch(self, images: Any, instructions: Any, unnorm_keys: Any = None) -> list:
        self.calls += 1
        time.sleep(self.delay_s)
        return self._policy.predict_batch(images, instructions, unnorm_keys)
