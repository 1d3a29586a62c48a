"""RemoteBackend / OpenVLAClient: results, clear failures, no stale actions, recovery."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest
from remote_helpers import images, SlowPolicy

from openvla_ros.backends import BackendConfig, BackendResult, make_backend, RemoteBackend
from openvla_ros.remote.client import (
    OpenVLAClient,
    ServerHTTPError,
    ServerNotReadyError,
    ServerTimeoutError,
    ServerUnreachableError,
    StaleAnswerError,
)
from openvla_ros.remote.server import ServerSettings


def _config(url: str, **kwargs) -> BackendConfig:
    return BackendConfig(kind='remote', server_url=url, **kwargs)


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_remote_backend_returns_one_action_of_the_server_model(server, policy) -> None:
    backend = make_backend(_config(server.url, unnorm_key='bridge_orig', timeout_s=30))
    try:
        assert isinstance(backend, RemoteBackend)
        assert backend.model_name == policy.model_name
        assert backend.unnorm_key == 'bridge_orig'
        image = images(1, seed=11)[0]
        result = backend.predict(image, 'pick up the cup')
        assert isinstance(result, BackendResult)
        assert result.actions.shape == (1, 7) and result.actions.dtype == np.float64
        expected = policy.predict(image, 'pick up the cup', 'bridge_orig')
        np.testing.assert_allclose(result.actions[0], expected.action, rtol=0, atol=1e-12)
        assert result.tokens == expected.tokens
        assert result.unnorm_key == 'bridge_orig' and result.latency_s > 0
    finally:
        backend.close()


def test_remote_backend_needs_a_key_when_the_model_has_several(server) -> None:
    with pytest.raises(ValueError, match=r"set unnorm_key to one of \['bridge_orig', 'fractal"):
        RemoteBackend(_config(server.url))


def test_remote_backend_refuses_a_key_the_server_does_not_know(server) -> None:
    with pytest.raises(ValueError, match="unnorm_key 'nope' is not one of"):
        RemoteBackend(_config(server.url, unnorm_key='nope'))


def test_remote_backend_fails_clearly_when_the_server_is_down_at_start() -> None:
    url = f'http://127.0.0.1:{_closed_port()}'
    start = time.monotonic()
    with pytest.raises(
        ServerUnreachableError, match=f'policy server {url} unreachable: connection refused'
    ):
        RemoteBackend(_config(url, unnorm_key='bridge_orig', timeout_s=1.0))
    assert time.monotonic() - start < 3.0


def test_remote_backend_with_a_wrong_token_fails_at_start_with_401(serve, policy) -> None:
    running = serve(policy, ServerSettings(token='s3cret'))
    with pytest.raises(ServerHTTPError, match='HTTP 401: wrong bearer token'):
        RemoteBackend(_config(running.url, server_token='nope', unnorm_key='bridge_orig'))
    backend = RemoteBackend(_config(running.url, server_token='s3cret', unnorm_key='bridge_orig'))
    backend.close()


def test_remote_backend_waits_for_a_loading_server(serve, policy) -> None:
    import threading

    running = serve(None)
    timer = threading.Timer(0.8, running.app.state.runtime.set_policy, args=(policy,))
    timer.start()
    backend = RemoteBackend(_config(running.url, unnorm_key='bridge_orig'), ready_timeout_s=10)
    assert backend.model_name == policy.model_name
    backend.close()
    running2 = serve(None)
    with pytest.raises(ServerNotReadyError, match='still loading.*not ready after 1 s'):
        RemoteBackend(_config(running2.url, unnorm_key='bridge_orig'), ready_timeout_s=1)


def test_killed_server_gives_a_clear_unreachable_error_in_time_and_recovery(serve, policy) -> None:
    running = serve(policy, ServerSettings(unnorm_key='bridge_orig'))
    backend = RemoteBackend(_config(running.url, timeout_s=1.0, retries=1))
    image = images(1, seed=12)[0]
    first = backend.predict(image, 'wipe')
    running.stop()  # the server dies mid-run
    start = time.monotonic()
    with pytest.raises(ServerUnreachableError) as info:
        backend.predict(image, 'wipe')
    assert time.monotonic() - start < 1.0 + 0.5
    assert str(info.value) == f'policy server {running.url} unreachable: connection refused'
    serve(policy, ServerSettings(unnorm_key='bridge_orig'), port=running.port)  # back again
    again = backend.predict(image, 'wipe')
    np.testing.assert_array_equal(again.actions, first.actions)
    backend.close()


def test_an_answer_slower_than_the_timeout_is_not_used(serve, policy) -> None:
    slow = SlowPolicy(policy, delay_s=1.5)
    running = serve(slow, ServerSettings(unnorm_key='bridge_orig'))
    backend = RemoteBackend(_config(running.url, timeout_s=0.4, retries=2))
    start = time.monotonic()
    with pytest.raises(ServerTimeoutError, match=r'timed out after 0\.4 s'):
        backend.predict(images(1)[0], 'wipe')
    assert time.monotonic() - start < 0.4 + 0.5
    assert slow.calls == 1  # a timeout is not retried: the budget is spent
    backend.close()


def _mock_backend(handler, **kwargs) -> RemoteBackend:
    """A RemoteBackend on an httpx MockTransport (answers shaped by ``handler``)."""
    info = {
        'name': 'mock',
        'action_dim': 7,
        'unnorm_keys': ['bridge_orig'],
        'default_unnorm_key': 'bridge_orig',
        'max_batch': 8,
    }

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == '/v1/info':
            return httpx.Response(200, json=info)
        return handler(request, info)

    return RemoteBackend(
        _config('http://127.0.0.1:9', **kwargs), transport=httpx.MockTransport(route)
    )


def _answer(request: httpx.Request, info: dict, request_id: str | None = None) -> httpx.Response:
    sent = json.loads(request.content)
    return httpx.Response(
        200,
        json={
            'request_id': sent['request_id'] if request_id is None else request_id,
            'action': [0.0] * 7,
            'normalized_action': [0.0] * 7,
            'tokens': [31800] * 7,
            'unnorm_key': 'bridge_orig',
            'batch_size': 1,
            'latency': {'queue_s': 0.0, 'model_s': 0.01, 'total_s': 0.01},
            'model': info,
        },
    )


def test_an_answer_to_another_request_is_dropped() -> None:
    backend = _mock_backend(lambda request, info: _answer(request, info, request_id='older'))
    with pytest.raises(StaleAnswerError, match="belongs to request 'older'.*dropped"):
        backend.predict(images(1)[0], 'wipe')


def test_an_answer_arriving_after_the_budget_is_dropped() -> None:
    def late(request: httpx.Request, info: dict) -> httpx.Response:
        time.sleep(0.3)  # a mock transport ignores timeouts: the answer still "arrives"
        return _answer(request, info)

    backend = _mock_backend(late, timeout_s=0.2)
    with pytest.raises(StaleAnswerError, match=r'after the 0\.2 s budget; dropped'):
        backend.predict(images(1)[0], 'wipe')


def test_server_errors_are_retried_and_client_errors_are_not() -> None:
    calls: list[int] = []

    def flaky(status: int):
        def handler(request: httpx.Request, info: dict) -> httpx.Response:
            calls.append(status)
            if len(calls) == 1:
                return httpx.Response(status, json={'error': 'x', 'detail': f'status {status}'})
            return _answer(request, info)

        return handler

    backend = _mock_backend(flaky(500), retries=1)
    assert backend.predict(images(1)[0], 'wipe').actions.shape == (1, 7)
    assert calls == [500, 500]
    calls.clear()
    backend = _mock_backend(flaky(422), retries=3)
    with pytest.raises(ServerHTTPError, match='HTTP 422: status 422') as info:
        backend.predict(images(1)[0], 'wipe')
    assert info.value.status == 422 and calls == [422]


def test_client_refuses_an_image_that_is_not_rgb_uint8() -> None:
    client = OpenVLAClient('http://127.0.0.1:9')
    with pytest.raises(ValueError, match='H x W x 3 uint8'):
        client.act(np.zeros((4, 4), np.uint8), 'wipe')
    client.close()


def test_client_sends_png_when_asked_and_gets_the_same_action(server) -> None:
    image = images(1, seed=13)[0]
    with (
        OpenVLAClient(server.url, timeout_s=30) as raw,
        OpenVLAClient(server.url, timeout_s=30, image_format='png') as png,
    ):
        np.testing.assert_array_equal(
            raw.act(image, 'wipe', 'bridge_orig'), png.act(image, 'wipe', 'bridge_orig')
        )
        assert raw.health()['status'] == 'ready'
        assert raw.metrics()['predictions_total'] >= 2
