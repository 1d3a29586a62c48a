"""The policy server under hostile clients (issue 18), driven over real sockets on 127.0.0.1.

One test per defect found: bodies that made a 500 (huge shape sizes, numbers past Python's
4300-digit limit), 500s missing from /metrics, connections stalled without a read timeout, a
traceback per client that left mid-body, /act's 401 without WWW-Authenticate, and a memory address
in "not a readable PNG/JPEG". Timeouts are driven with raw sockets, as a stalled client would.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import socket
import time

import httpx
import json_numpy
from PIL import Image
import pytest
from remote_helpers import images, read_until_closed

from openvla_ros.remote.protocol import encode_array
from openvla_ros.remote.server import CONNECTION_PATH, LogRateLimit, OTHER_PATH, ServerSettings

#: Short limits, so a test waits about a second for each timeout.
FAST = {'header_timeout_s': 1.0, 'body_timeout_s': 1.0, 'keep_alive_s': 1.0}


class _Records(logging.Handler):
    """Records of the server's loggers: ours and uvicorn's (which does not reach caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._loggers = [logging.getLogger(n) for n in ('openvla_ros.remote', 'uvicorn.error')]
        self._level = self._loggers[0].level

    def attach(self) -> None:
        """After the server started: uvicorn's Config resets the handlers of its loggers."""
        self._loggers[0].setLevel(logging.DEBUG)
        for logger in self._loggers:
            logger.addHandler(self)

    def detach(self) -> None:
        for logger in self._loggers:
            logger.removeHandler(self)
        self._loggers[0].setLevel(self._level)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def server_log():
    """What the server logs; call ``attach()`` once the server runs."""
    handler = _Records()
    yield handler
    handler.detach()


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout_s} s waiting for {what}')
        time.sleep(0.05)


def _settings(**overrides) -> ServerSettings:
    return ServerSettings(**{'unnorm_key': 'bridge_orig', **FAST, **overrides})


def _good_body() -> dict:
    return {'image': encode_array(images(1, size=(32, 32))[0]), 'instruction': 'wipe'}


def _good_predict(url: str) -> int:
    return httpx.post(f'{url}/v1/predict', json=_good_body(), timeout=30).status_code


def _connect(port: int) -> socket.socket:
    return socket.create_connection(('127.0.0.1', port), timeout=10)


def _status(response: bytes) -> int:
    return int(response.split(b' ', 2)[1])


def _metrics(url: str) -> dict:
    return httpx.get(f'{url}/metrics', timeout=10).json()


def _post_raw(url: str, path: str, body: bytes, **kwargs) -> httpx.Response:
    return httpx.post(f'{url}{path}', content=body, timeout=30, **kwargs)


def _image_json(shape: list[int]) -> str:
    return json.dumps({'__numpy__': '', 'dtype': '|u1', 'shape': shape})


# -- 1. bodies that made a 500


@pytest.mark.parametrize(
    'shape',
    [[0, 10**30], [0, 2**40, 2**40, 3], [2**40, 0, 3], [True, 1, 3], [-1, 4, 3]],
    ids=['zero-times-huge', 'array-too-big', 'huge-then-zero', 'bool-size', 'negative'],
)
@pytest.mark.parametrize('path', ['/act', '/v1/predict'])
def test_a_shape_with_a_huge_or_zero_size_gets_400_not_500(server, path, shape) -> None:
    body = f'{{"image": {_image_json(shape)}, "instruction": "wipe"}}'.encode()
    response = _post_raw(server.url, path, body)
    assert response.status_code == 400, response.text
    if path == '/act':
        assert response.json() == 'error' and 'shape' in response.headers['x-openvla-error']
    else:
        assert response.json()['error'] == 'bad_array'
    assert '500' not in _metrics(server.url)['responses_by_status']


@pytest.mark.parametrize(
    'literal',
    ['1' * 5000, '-' + '9' * 4301, '1e999', '-1e999', '0.' + '1' * 5000, 'NaN', 'Infinity'],
    ids=[
        'int-5000-digits',
        'int-4302-digits',
        'huge-float',
        'huge-negative',
        'long-float',
        'nan',
        'infinity',
    ],
)
@pytest.mark.parametrize('path', ['/act', '/v1/predict'])
def test_an_unbounded_number_anywhere_in_the_body_gets_400(server, path, literal) -> None:
    image = json.dumps(encode_array(images(1, size=(8, 8))[0]))
    for body in (
        f'{{"image": {image}, "instruction": "wipe", "unnorm_key": {literal}}}',
        f'{{"image": {_image_json([8, 8, 3]).replace("3]", literal + "]")}, "instruction": "x"}}',
        f'[{literal}]',
    ):
        response = _post_raw(server.url, path, body.encode())
        assert response.status_code == 400, (body[:80], response.text[:200])
    assert '500' not in _metrics(server.url)['responses_by_status']


def test_a_lone_surrogate_in_a_text_field_gets_422_not_500(server) -> None:
    image = json.dumps(encode_array(images(1, size=(8, 8))[0]))
    for field in ('instruction', 'unnorm_key', 'request_id'):
        extra = '' if field == 'instruction' else ', "instruction": "wipe"'
        body = f'{{"image": {image}, "{field}": "\\ud800"{extra}}}'.encode()
        response = _post_raw(server.url, '/v1/predict', body)
        assert response.status_code == 422, response.text
        assert response.json()['error'] == f'bad_{field}'


# -- 2. every response counted, a crash included


class _CrashingPolicy:
    """Delegates to a real policy; asking for the key 'boom' raises an unexpected error."""

    def __init__(self, policy) -> None:
        self._policy = policy
        self.model_name, self.unnorm_keys = policy.model_name, policy.unnorm_keys
        self.action_dim = policy.action_dim

    def resolve_unnorm_key(self, key):
        if key == 'boom':
            raise KeyError('a server bug')  # not the ValueError the server expects
        return self._policy.resolve_unnorm_key(key)

    def predict_batch(self, *args, **kwargs):
        return self._policy.predict_batch(*args, **kwargs)


def test_a_crash_is_a_counted_500_with_the_error_body_and_one_log_line(
    serve, policy, server_log
) -> None:
    running = serve(_CrashingPolicy(policy), _settings())
    server_log.attach()
    body = dict(_good_body(), unnorm_key='boom')
    predict = httpx.post(f'{running.url}/v1/predict', json=body, timeout=30)
    act_body = {'image': images(1, size=(8, 8))[0], 'instruction': 'x', 'unnorm_key': 'boom'}
    act = _post_raw(running.url, '/act', json_numpy.dumps(act_body).encode())
    assert predict.status_code == 500
    assert predict.json() == {'error': 'internal_error', 'detail': 'unexpected server error'}
    assert act.status_code == 500 and act.json() == 'error'
    snap = _metrics(running.url)
    assert snap['responses_by_status']['500'] == 2
    assert snap['errors_total'] == 2
    assert snap['requests_by_path']['/act'] == 1
    errors = [r for r in server_log.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, server_log.messages()
    assert all('KeyError' in r.getMessage() and r.exc_info is None for r in errors)
    assert not any('Exception in ASGI' in m for m in server_log.messages())
    assert _good_predict(running.url) == 200  # and the server keeps serving


def test_unknown_paths_are_counted_under_one_name(server) -> None:
    before = _metrics(server.url)['requests_by_path'].get(OTHER_PATH, 0)
    for i in range(20):
        assert httpx.get(f'{server.url}/nope/{i}').status_code == 404
    by_path = _metrics(server.url)['requests_by_path']
    assert by_path[OTHER_PATH] == before + 20
    assert not any(path.startswith('/nope') for path in by_path)


# -- 3. read timeouts and a bound on connections


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(serve, policy) -> None:
    running = serve(policy, _settings(header_timeout_s=1.5))
    with _connect(running.port) as stalled:
        assert _good_predict(running.url) == 200  # another client is served meanwhile
        data = read_until_closed(stalled, limit_s=10)
    assert data == b''  # nothing was asked, nothing is answered


def test_half_sent_headers_get_408_and_a_close_after_the_header_timeout(serve, policy) -> None:
    running = serve(policy, _settings(header_timeout_s=1.5))
    with _connect(running.port) as stalled:
        stalled.sendall(b'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Ty')
        assert _good_predict(running.url) == 200
        data = read_until_closed(stalled, limit_s=10)
    assert _status(data) == 408 and b'header_timeout' in data
    assert _metrics(running.url)['requests_by_path'][CONNECTION_PATH] == 1


def test_headers_dripped_a_byte_at_a_time_still_time_out(serve, policy) -> None:
    """The header deadline is total, not per byte: a slowloris client cannot hold a connection."""
    running = serve(policy, _settings(header_timeout_s=1.5))
    request = b'GET /health HTTP/1.1\r\nHost: x\r\n' + b'X-Pad: ' + b'a' * 200
    started = time.monotonic()
    with _connect(running.port) as slow:
        for byte in request:
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)  # 250 bytes take 12 s: far past the deadline
            if time.monotonic() - started > 20:
                break
        data = read_until_closed(slow, limit_s=10)
    assert _status(data) == 408
    assert time.monotonic() - started < 20  # closed long before all bytes could be sent


@pytest.mark.parametrize('path', ['/act', '/v1/predict'])
def test_headers_and_half_a_body_get_408_and_a_close_after_the_body_timeout(
    serve, policy, path
) -> None:
    running = serve(policy, _settings(body_timeout_s=1.5))
    with _connect(running.port) as stalled:
        stalled.sendall(
            f'POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
            'Content-Length: 1000\r\n\r\n{"image": '.encode()
        )
        assert _good_predict(running.url) == 200
        data = read_until_closed(stalled, limit_s=10)
    assert _status(data) == 408
    head = data.split(b'\r\n\r\n')[0].lower()
    assert b'connection: close' in head
    if path == '/act':
        assert b'x-openvla-error: the request body did not arrive' in head
    else:
        assert b'"body_timeout"' in data
    assert _metrics(running.url)['responses_by_status']['408'] == 1


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    serve, policy
) -> None:
    running = serve(policy, _settings(keep_alive_s=1.0))
    with _connect(running.port) as client:
        client.sendall(b'GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
        data = read_until_closed(client, limit_s=10)
    assert _status(data) == 200 and b'"ready"' in data


def test_an_early_error_closes_the_connection_so_the_unread_body_cannot_hold_it(
    serve, policy
) -> None:
    """A 401 answered before the body was read must not leave the connection draining it."""
    running = serve(policy, _settings(token='s3cret', keep_alive_s=30, body_timeout_s=30))
    with _connect(running.port) as client:
        client.sendall(b'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{')
        data = read_until_closed(client, limit_s=10)
    assert _status(data) == 401 and b'connection: close' in data.lower()


def test_connections_over_the_limit_get_503_and_the_server_recovers(serve, policy) -> None:
    running = serve(policy, _settings(max_connections=4, header_timeout_s=30))
    state = running.server.server_state
    held = [_connect(running.port) for _ in range(4)]
    try:
        wait_for(lambda: len(state.connections) == 4, 10, 'four open connections')
        with _connect(running.port) as extra:
            data = read_until_closed(extra, limit_s=10)
        assert _status(data) == 503 and b'too_many_connections' in data
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: not state.connections, 10, 'the held connections to close')
    assert _good_predict(running.url) == 200
    assert _metrics(running.url)['responses_by_status']['503'] == 1


# -- 4. a client that leaves mid-body costs one log line


def test_a_client_that_leaves_mid_body_costs_one_log_line_and_no_traceback(
    serve, policy, server_log
) -> None:
    running = serve(policy, _settings(body_timeout_s=30))
    server_log.attach()
    for path in ('/act', '/v1/predict', '/act'):
        with _connect(running.port) as leaving:
            head = f'POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n'
            leaving.sendall(head.encode() + b'{"image": ')
            time.sleep(0.1)
    wait_for(
        lambda: _metrics(running.url)['responses_by_status'].get('499') == 3,
        10,
        'three requests counted as client-closed',
    )
    assert len(server_log.records) == 3, server_log.messages()
    assert all('left before' in m for m in server_log.messages())
    assert not [r for r in server_log.records if r.exc_info or r.levelno >= logging.ERROR]


# -- also: /act's 401 header, and no memory address in image errors


def test_act_401_says_www_authenticate_bearer(serve, policy) -> None:
    running = serve(policy, _settings(token='s3cret'))
    response = _post_raw(running.url, '/act', b'{}')
    assert response.status_code == 401 and response.json() == 'error'
    assert response.headers['www-authenticate'] == 'Bearer'


def _truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(images(1, size=(64, 64))[0]).save(buffer, format='PNG')
    return buffer.getvalue()[:200]


@pytest.mark.parametrize(
    'raw', [b'hello', b'GIF89a' + b'\0' * 20, _truncated_png()], ids=['text', 'gif', 'cut-png']
)
def test_unreadable_image_messages_name_no_memory_address(server, raw) -> None:
    body = {'image': base64.b64encode(raw).decode(), 'instruction': 'wipe'}
    response = httpx.post(f'{server.url}/v1/predict', json=body, timeout=30)
    assert response.status_code == 422 and response.json()['error'] == 'bad_image'
    assert not re.search(r'0x[0-9a-fA-F]{6,}', response.text), response.text


# -- the log cannot be flooded


def test_the_rate_limit_passes_a_burst_then_reports_what_it_dropped() -> None:
    now = [0.0]
    limiter = LogRateLimit(burst=3, window_s=10.0, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord('openvla_ros.remote', logging.INFO, __file__, 1, msg, (), None)

    assert [limiter.filter(record('closed %s')) for _ in range(10)] == [True] * 3 + [False] * 7
    assert limiter.filter(record('another template'))  # counted apart
    now[0] = 10.0
    late = record('closed %s')
    assert limiter.filter(late) and '7 more like this were not logged' in late.msg


def test_a_flood_of_unparsable_requests_writes_a_bounded_log(serve, policy, server_log) -> None:
    running = serve(policy, _settings())
    server_log.attach()
    for _ in range(60):
        with _connect(running.port) as client:
            client.sendall(b'NOT HTTP AT ALL\r\n\r\n')
            data = read_until_closed(client, limit_s=10)
            assert _status(data) == 400
    invalid = [m for m in server_log.messages() if 'Invalid HTTP' in m]
    assert 1 <= len(invalid) <= 20, len(invalid)  # a burst of 20 per 10 s, not 60
    assert _metrics(running.url)['requests_by_path'][CONNECTION_PATH] == 60
