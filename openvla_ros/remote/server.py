"""The policy server: OpenVLA behind HTTP for robots that have no GPU of their own.

FastAPI + uvicorn, because OpenVLA's own ``vla-scripts/deploy.py`` is a FastAPI app (its client,
and scripts written for it, keep working against ``POST /act``), because requests are awaited
asynchronously while one worker thread runs the batched model, and because FastAPI writes the
OpenAPI description (``/docs``, ``/openapi.json``) for free.

Endpoints (see docs/remote.md): ``POST /act`` (deploy.py-compatible), ``POST /v1/predict``
(action + normalized action + tokens + latency + model info), ``GET /v1/info``, ``GET /health``
(200 ready, 503 loading/failed; never needs the token, for load balancers) and ``GET /metrics``
(JSON, or Prometheus text with ``?format=prometheus``).

Hostile clients (docs/remote.md, "Limits and timeouts"): every client mistake is a 4xx; a crash is
a counted 500 and one log line; the request headers must arrive within ``header_timeout_s`` and
the body within ``body_timeout_s``; at most ``max_connections`` are open; idle keep-alive
connections close after ``keep_alive_s``; repeated log lines are rate-limited. uvicorn has no
header or body read timeout of its own: the header deadline lives in `_guarded_protocol` (h11),
the body deadline in `_Guard` (ASGI, around ``receive``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
import contextlib
from dataclasses import dataclass, field
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
import json_numpy
import numpy as np
from starlette.requests import ClientDisconnect

from openvla_ros.remote.batching import BatchedPrediction, Batcher, Metrics, QueueFullError
from openvla_ros.remote.protocol import (
    ApiError,
    check_text,
    decode_image,
    ErrorResponse,
    HealthResponse,
    Limits,
    loads_payload,
    ModelInfo,
    PolicyLike,
    PredictRequest,
    PredictResponse,
)

__all__ = [
    'LogRateLimit',
    'ServerSettings',
    'create_app',
    'is_loopback',
    'limit_log_rate',
    'run_server',
    'uvicorn_config',
]

_LOG = logging.getLogger('openvla_ros.remote')
#: deploy.py answers every failure of /act with this JSON string; so do we (with a 4xx/5xx status
#: and the reason in this header).
ACT_ERROR_BODY = 'error'
ERROR_HEADER = 'X-OpenVLA-Error'
_PREDICT_FIELDS = frozenset(PredictRequest.model_fields)
#: The path under which /metrics counts responses written before any request was read (header
#: timeouts, refused connections, unparsable requests).
CONNECTION_PATH = '(connection)'
#: The path under which /metrics counts requests to unknown paths (one counter, not one each).
OTHER_PATH = '(other)'
#: Status counted for a client that closed its connection before the server answered (as nginx).
CLIENT_CLOSED = 499


@dataclass(frozen=True)
class ServerSettings:
    """How the server listens, batches and limits requests."""

    host: str = '127.0.0.1'
    port: int = 8000
    token: str = ''
    unnorm_key: str = ''
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 64
    limits: Limits = field(default_factory=Limits)
    log_level: str = 'info'
    #: From connection (or first byte after a response) to the end of the request headers.
    header_timeout_s: float = 10.0
    #: From the end of the headers to the end of the body (32 MiB at 10 Mbit/s takes 27 s).
    body_timeout_s: float = 60.0
    #: An idle keep-alive connection is closed after this long.
    keep_alive_s: float = 5.0
    #: Open connections; more are answered 503 and closed at once.
    max_connections: int = 64


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Runtime:
    """The app's mutable state: the policy (None while loading), the batcher, the metrics."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = Metrics(settings.max_batch)
        self.policy: PolicyLike | None = None
        self.batcher: Batcher | None = None
        self.default_key: str | None = None
        self.failure: BaseException | None = None
        self._lock = threading.Lock()

    def set_policy(self, policy: PolicyLike) -> None:
        """Make the server ready (resolving the default key first, so a bad one fails here)."""
        key = self.settings.unnorm_key
        if key:
            default: str | None = policy.resolve_unnorm_key(key)
        else:
            try:
                default = policy.resolve_unnorm_key(None)
            except ValueError:
                default = None  # several datasets: each request must name one
        batcher = Batcher(
            policy,
            max_batch=self.settings.max_batch,
            max_wait_s=self.settings.max_wait_ms / 1000.0,
            max_queue=self.settings.max_queue,
            metrics=self.metrics,
        ).start()
        with self._lock:
            self.default_key, self.batcher, self.policy = default, batcher, policy

    def set_failed(self, exc: BaseException) -> None:
        self.failure = exc

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.stop()

    def info(self) -> ModelInfo:
        policy = self.require_ready()
        return ModelInfo(
            name=str(policy.model_name),
            action_dim=int(policy.action_dim),
            unnorm_keys=list(policy.unnorm_keys),
            default_unnorm_key=self.default_key,
            max_batch=self.settings.max_batch,
        )

    def require_ready(self) -> PolicyLike:
        if self.policy is None:
            if self.failure is not None:
                raise ApiError(503, 'failed', f'the model failed to load: {self.failure}')
            raise ApiError(503, 'loading', 'the model is still loading')
        return self.policy

    def resolve_key(self, key: str | None) -> str:
        policy = self.require_ready()
        if key is None and self.default_key is not None:
            return self.default_key
        try:
            return policy.resolve_unnorm_key(key)
        except ValueError as exc:  # UnnormKeyError: its message lists the keys
            raise ApiError(400, 'unknown_unnorm_key', str(exc)) from None


class BodyTimeoutError(ApiError):
    """The body did not arrive within ``body_timeout_s`` of the headers (HTTP 408)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408, 'body_timeout', f'the request body did not arrive within {timeout_s:g} s'
        )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is over ``limit`` bytes (before reading it all)."""
    declared = request.headers.get('content-length')
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, 'bad_request', 'Content-Length is not a number') from None
        if size > limit:
            raise ApiError(413, 'payload_too_large', f'body of {size} bytes is over {limit}')
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, 'payload_too_large', f'body is over {limit} bytes')
        chunks.append(chunk)
    return b''.join(chunks)


def _check_token(request: Request, token: str) -> None:
    if not token:
        return
    header = request.headers.get('authorization', '')
    scheme, _, given = header.partition(' ')
    if scheme.lower() != 'bearer' or not given:
        raise ApiError(401, 'unauthorized', 'missing bearer token (Authorization: Bearer <token>)')
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, 'unauthorized', 'wrong bearer token')


def _auth_header(exc: ApiError) -> dict[str, str]:
    """RFC 6750: a 401 names the scheme it wants."""
    return {'WWW-Authenticate': 'Bearer'} if exc.status == 401 else {}


def _error_json(exc: ApiError) -> JSONResponse:
    # 'replace': a detail that echoes client text must still encode (JSONResponse writes UTF-8).
    detail = exc.message.encode('utf-8', 'replace').decode('utf-8')
    body = ErrorResponse(error=exc.code, detail=detail).model_dump()
    return JSONResponse(body, status_code=exc.status, headers=_auth_header(exc) or None)


def _header_text(message: str) -> str:
    text = ' '.join(message.split())
    return text.encode('ascii', 'replace').decode('ascii')[:500]


async def _predict(
    runtime: _Runtime, image: Any, instruction: Any, key: Any
) -> tuple[BatchedPrediction, str]:
    """Validate one request, queue it, await its batched answer."""
    limits = runtime.settings.limits
    instruction = check_text(
        instruction, 'instruction', limits.max_instruction_chars, required=True
    )
    key = check_text(key, 'unnorm_key', limits.max_key_chars, required=False)
    array = decode_image(image, limits)
    resolved = runtime.resolve_key(key)
    batcher = runtime.batcher
    assert batcher is not None  # resolve_key checked readiness
    try:
        future = batcher.submit(array, instruction, resolved)
    except QueueFullError as exc:
        raise ApiError(503, 'overloaded', f'server is busy: {exc}') from None
    except RuntimeError as exc:
        raise ApiError(503, 'shutting_down', str(exc)) from None
    try:
        result = await asyncio.wrap_future(future)
    except ValueError as exc:  # InvalidInputError / UnnormKeyError from the policy
        raise ApiError(422, 'invalid_input', str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - non-finite action, CUDA error, ...
        _LOG.error('prediction failed: %s: %s', type(exc).__name__, exc)
        raise ApiError(500, 'model_error', f'{type(exc).__name__}: {exc}') from None
    return result, resolved


def _require(payload: dict, names: tuple[str, ...] = ('image', 'instruction')) -> None:
    for name in names:
        if name not in payload:
            raise ApiError(422, f'missing_{name}', f'"{name}" is missing')


def _act_error(exc: ApiError) -> Response:
    """deploy.py's failure answer: the JSON string "error", our status, the reason in a header."""
    if exc.status >= 500:
        _LOG.warning('/act: %s', exc.message)
    return Response(
        json.dumps(ACT_ERROR_BODY),
        status_code=exc.status,
        media_type='application/json',
        headers={ERROR_HEADER: _header_text(exc.message), **_auth_header(exc)},
    )


def _predict_response(
    request_id: str | None, result: BatchedPrediction, key: str, total_s: float, info: ModelInfo
) -> PredictResponse:
    p = result.prediction
    return PredictResponse(
        request_id=request_id,
        action=[float(v) for v in p.action],
        normalized_action=[float(v) for v in p.normalized_action],
        tokens=[int(t) for t in p.tokens],
        unnorm_key=key,
        batch_size=result.batch_size,
        latency={'queue_s': result.queue_s, 'model_s': result.model_s, 'total_s': total_s},
        model=info,
    )


class _Endpoints:
    """The route handlers, around one `_Runtime` (``create_app`` registers them on the app).

    Each checks the token first (except /health) and answers an `ApiError` in its endpoint's error
    format: /act like deploy.py (see `_act_error`), the others as `ErrorResponse` JSON.
    """

    def __init__(self, runtime: _Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    async def _payload(self, request: Request) -> Any:
        """The token checked, then the body read (bounded) and parsed as json_numpy."""
        _check_token(request, self.settings.token)
        limits = self.settings.limits
        return loads_payload(await _read_body(request, limits.max_body_bytes), limits)

    async def act(self, request: Request) -> Response:
        """deploy.py-compatible: json_numpy ``{image, instruction, unnorm_key?}`` -> action.

        Also accepts deploy.py's double encoding ``{"encoded": "<json_numpy text>"}`` (answered
        in kind). Errors answer the JSON string "error" like deploy.py, with a 4xx/5xx status and
        the reason in the X-OpenVLA-Error header.
        """
        try:
            payload = await self._payload(request)
            double_encoded = isinstance(payload, dict) and 'encoded' in payload
            if double_encoded:
                if len(payload) != 1 or not isinstance(payload['encoded'], str):
                    raise ApiError(400, 'bad_request', '"encoded" must be the only key, a string')
                payload = loads_payload(payload['encoded'].encode(), self.settings.limits)
            if not isinstance(payload, dict):
                raise ApiError(400, 'bad_request', 'body must be a JSON object')
            _require(payload)
            result, _ = await _predict(
                self.runtime, payload['image'], payload['instruction'], payload.get('unnorm_key')
            )
        except ApiError as exc:
            return _act_error(exc)
        text = json_numpy.dumps(np.asarray(result.prediction.action, dtype=np.float64))
        return Response(
            json.dumps(text) if double_encoded else text, media_type='application/json'
        )

    async def predict(self, request: Request) -> Response:
        """One image + instruction -> action, normalized action, tokens, latency, model info."""
        received = time.monotonic()
        try:
            payload = await self._payload(request)
            if not isinstance(payload, dict):
                raise ApiError(400, 'bad_request', 'body must be a JSON object')
            unknown = sorted(set(payload) - _PREDICT_FIELDS)
            if unknown:
                raise ApiError(
                    422,
                    'unknown_field',
                    f'unknown fields {unknown}; known: {sorted(_PREDICT_FIELDS)}',
                )
            _require(payload)
            request_id = check_text(
                payload.get('request_id'),
                'request_id',
                self.settings.limits.max_request_id_chars,
                required=False,
            )
            result, key = await _predict(
                self.runtime, payload['image'], payload['instruction'], payload.get('unnorm_key')
            )
            info = self.runtime.info()
        except ApiError as exc:
            return _error_json(exc)
        total = time.monotonic() - received
        self.runtime.metrics.record_total(total)
        return JSONResponse(_predict_response(request_id, result, key, total, info).model_dump())

    async def info(self, request: Request) -> Response:
        """The model: name, action dimension, dataset keys, default key, max batch."""
        try:
            _check_token(request, self.settings.token)
            return JSONResponse(self.runtime.info().model_dump())
        except ApiError as exc:
            return _error_json(exc)

    async def health(self) -> Response:
        """200 'ready'; 503 'loading' or 'failed'. No token needed (load-balancer checks)."""
        runtime = self.runtime
        uptime = time.monotonic() - runtime.metrics.started
        if runtime.policy is not None:
            body = HealthResponse(
                status='ready', model=str(runtime.policy.model_name), uptime_s=uptime
            )
            return JSONResponse(body.model_dump())
        if runtime.failure is not None:
            body = HealthResponse(status='failed', detail=str(runtime.failure), uptime_s=uptime)
        else:
            body = HealthResponse(status='loading', uptime_s=uptime)
        return JSONResponse(body.model_dump(), status_code=503)

    async def metrics(self, request: Request, format: str = 'json') -> Response:  # noqa: A002
        """Counters, batch-size histogram and latency percentiles: JSON, or Prometheus text."""
        try:
            _check_token(request, self.settings.token)
            if format not in ('json', 'prometheus'):
                raise ApiError(422, 'bad_format', "format must be 'json' or 'prometheus'")
        except ApiError as exc:
            return _error_json(exc)
        snap = self.runtime.metrics.snapshot()
        if format == 'prometheus':
            return PlainTextResponse(
                prometheus_text(snap), media_type='text/plain; version=0.0.4; charset=utf-8'
            )
        return JSONResponse(snap)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: these statuses answer an `ErrorResponse`."""
    return {code: {'model': ErrorResponse} for code in codes}


def _add_routes(app: FastAPI, endpoints: _Endpoints) -> None:
    """Registers the handlers with their OpenAPI descriptions (in this order)."""
    app.post('/act', response_class=Response)(endpoints.act)
    app.post(
        '/v1/predict',
        response_model=PredictResponse,
        responses=_errors(400, 401, 413, 422, 500, 503),
        openapi_extra={
            'requestBody': {
                'required': True,
                'content': {'application/json': {'schema': PredictRequest.model_json_schema()}},
            }
        },
    )(endpoints.predict)
    app.get('/v1/info', response_model=ModelInfo, responses=_errors(401, 503))(endpoints.info)
    app.get('/health', response_model=HealthResponse, responses={503: {'model': HealthResponse}})(
        endpoints.health
    )
    app.get('/metrics', responses=_errors(401))(endpoints.metrics)


def create_app(policy: PolicyLike | None, settings: ServerSettings | None = None) -> FastAPI:
    """The server's FastAPI app around an already loaded policy (None: /health says 'loading'
    until ``app.state.runtime.set_policy(policy)``). The batch worker starts with the policy.
    """
    runtime = _Runtime(settings or ServerSettings())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        runtime.stop()  # finish the running batch, fail the queued requests

    app = FastAPI(
        title='openvla_ros policy server',
        description='OpenVLA actions over HTTP; see docs/remote.md.',
        version='1',
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    if policy is not None:
        runtime.set_policy(policy)
    _add_routes(app, _Endpoints(runtime))
    # Added last, so it knows every route; it sits inside Starlette's ServerErrorMiddleware and
    # catches first, so that one never prints its traceback.
    app.add_middleware(_Guard, runtime=runtime, paths=frozenset(r.path for r in app.routes))
    return app


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = ' '.join(str(exc).split())
    return f'{type(exc).__name__}: {text[:limit]}' if text else type(exc).__name__


class _Guard:
    """ASGI middleware around every HTTP request: metrics, body deadline, crash containment.

    - Counts every response in /metrics, a crash (500) and a vanished client (499) included.
    - Gives the body ``body_timeout_s`` from the end of the headers: a ``receive`` that waits past
      it raises `BodyTimeoutError` (the handlers answer 408).
    - Adds ``Connection: close`` to an answer sent before the body was read (401, 408, 413, ...),
      so the rest of that body cannot hold the connection open.
    - Turns an exception into a 500 with one log line (no traceback), and a client that left
      mid-body into one log line.
    """

    def __init__(self, app: Callable, runtime: _Runtime, paths: frozenset[str]) -> None:
        self.app = app
        self.runtime = runtime
        self.paths = paths

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        timeout_s = self.runtime.settings.body_timeout_s
        deadline = loop.time() + timeout_s
        headers = dict(scope['headers'])
        has_body = b'transfer-encoding' in headers or headers.get(b'content-length', b'0') != b'0'
        body_done, status = not has_body, None

        async def guarded_receive() -> dict:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                raise BodyTimeoutError(timeout_s) from None
            if message['type'] != 'http.request' or not message.get('more_body', False):
                body_done = True
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal status
            if message['type'] == 'http.response.start':
                status = message['status']
                if not body_done:
                    extra = [(b'connection', b'close')]
                    message = {**message, 'headers': [*message.get('headers', []), *extra]}
            await send(message)

        path = scope['path'] if scope['path'] in self.paths else OTHER_PATH
        client = scope.get('client') or ('?', 0)
        try:
            await self.app(scope, guarded_receive, guarded_send)
        except ClientDisconnect:
            _LOG.info(
                '%s %s: client %s left before sending its whole request',
                scope['method'],
                path,
                client[0],
            )
            status = status or CLIENT_CLOSED
        except Exception as exc:  # noqa: BLE001 - any crash: one line and a counted 500
            _LOG.error('%s %s: unexpected server error: %s', scope['method'], path, _one_line(exc))
            _LOG.debug('traceback of that error', exc_info=exc)
            if status is None:
                status = 500
                await self._send_500(path, guarded_send)
        finally:
            self.runtime.metrics.record_request(path, status if status is not None else 500)

    @staticmethod
    async def _send_500(path: str, send: Callable) -> None:
        if path == '/act':
            body = json.dumps(ACT_ERROR_BODY).encode()
            headers = [(ERROR_HEADER.lower().encode(), b'unexpected server error')]
        else:
            error = ErrorResponse(error='internal_error', detail='unexpected server error')
            body, headers = error.model_dump_json().encode(), []
        await send(
            {
                'type': 'http.response.start',
                'status': 500,
                'headers': [
                    (b'content-type', b'application/json'),
                    (b'content-length', str(len(body)).encode()),
                    (b'connection', b'close'),
                    *headers,
                ],
            }
        )
        await send({'type': 'http.response.body', 'body': body})


def _raw_response(status: int, reason: str, code: str, detail: str) -> bytes:
    """A whole HTTP/1.1 error answer, for the protocol layer (no request was parsed)."""
    body = ErrorResponse(error=code, detail=detail).model_dump_json().encode()
    head = (
        f'HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n'
        f'content-length: {len(body)}\r\nconnection: close\r\n\r\n'
    )
    return head.encode('ascii') + body


def _guarded_protocol(settings: ServerSettings, metrics: Any) -> type:
    """uvicorn's h11 protocol with a header deadline and a bound on open connections.

    The header timer runs from the connection (or the first byte after a response) to the end
    of the request headers; when it fires the connection is closed: silently if nothing came,
    with a 408 after half a request. Beyond ``max_connections`` a new connection gets 503 and is
    closed. Pinned to h11 (not httptools) so the behaviour tested is the behaviour served.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: PLC0415

    timeout_s, limit = settings.header_timeout_s, settings.max_connections
    busy = _raw_response(
        503, 'Service Unavailable', 'too_many_connections', f'over {limit} open connections'
    )
    late = _raw_response(
        408,
        'Request Timeout',
        'header_timeout',
        f'the request headers did not arrive within {timeout_s:g} s',
    )

    class GuardedH11Protocol(H11Protocol):
        _refused = False
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= limit:
                self._refused = True
                transport.write(busy)
                transport.close()
                metrics.record_request(CONNECTION_PATH, 503)
                _LOG.warning(
                    'refused a connection: %d open connections (--max-connections)',
                    len(self.connections),
                )
                return
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._header_timer is None and self._awaiting_headers():
                self._arm()
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._disarm()  # the next request's timer starts with its first byte
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            metrics.record_request(CONNECTION_PATH, 400)  # unparsable request (uvicorn logs it)
            super().send_400_response(msg)

        def _awaiting_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(timeout_s, self._on_header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _on_header_timeout(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or not self._awaiting_headers():
                return
            pending, _ = self.conn.trailing_data
            host = self.client[0] if self.client else '?'
            if pending:
                self.transport.write(late)
                metrics.record_request(CONNECTION_PATH, 408)
                _LOG.info(
                    'closed a connection from %s: request headers incomplete after %g s',
                    host,
                    timeout_s,
                )
            else:
                _LOG.debug('closed an idle connection from %s after %g s', host, timeout_s)
            self.transport.close()

    return GuardedH11Protocol


class LogRateLimit(logging.Filter):
    """At most ``burst`` records per message template per ``window_s``; the first record of the
    next window says how many were dropped. Keeps a hostile client from flooding the log."""

    def __init__(
        self, burst: int = 20, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst, self.window_s, self._clock = burst, window_s, clock
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [start, passed, dropped]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.window_s:
                if len(self._seen) > 1000:  # templates are few; f-string messages are not
                    self._seen.clear()
                dropped = int(entry[2]) if entry else 0
                entry = self._seen[key] = [now, 0, 0]
                if dropped:
                    record.msg = f'{record.msg} [{dropped} more like this were not logged]'
            if entry[1] < self.burst:
                entry[1] += 1
                return True
            entry[2] += 1
            return False


#: Loggers a client can make write: ours, and uvicorn's ("Invalid HTTP request received.").
_RATE_LIMITED_LOGGERS = ('openvla_ros.remote', 'uvicorn.error')


@contextlib.contextmanager
def limit_log_rate(burst: int = 20, window_s: float = 10.0) -> Iterator[LogRateLimit]:
    """Rate-limit the server's loggers while the block runs."""
    limiter = LogRateLimit(burst, window_s)
    loggers = [logging.getLogger(name) for name in _RATE_LIMITED_LOGGERS]
    for logger in loggers:
        logger.addFilter(limiter)
    try:
        yield limiter
    finally:
        for logger in loggers:
            logger.removeFilter(limiter)


def uvicorn_config(app: FastAPI, settings: ServerSettings, **overrides: Any) -> Any:
    """The uvicorn.Config the server runs with: guarded h11 protocol, keep-alive, no websockets."""
    import uvicorn  # noqa: PLC0415

    runtime: _Runtime = app.state.runtime
    options: dict[str, Any] = {
        'http': _guarded_protocol(settings, runtime.metrics),
        'ws': 'none',  # no websocket routes: an upgrade must not leave the guarded protocol
        'timeout_keep_alive': settings.keep_alive_s,
        'log_level': settings.log_level,
        'access_log': settings.log_level == 'debug',
        'timeout_graceful_shutdown': 5,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def prometheus_text(snap: dict[str, Any]) -> str:
    """A metrics snapshot in the Prometheus text exposition format (version 0.0.4)."""
    lines = [
        '# HELP openvla_uptime_seconds Seconds since the server started.',
        '# TYPE openvla_uptime_seconds gauge',
        f'openvla_uptime_seconds {snap["uptime_s"]:.3f}',
        '# HELP openvla_responses_total HTTP responses by status code.',
        '# TYPE openvla_responses_total counter',
    ]
    for status, n in snap['responses_by_status'].items():
        lines.append(f'openvla_responses_total{{status="{status}"}} {n}')
    lines += [
        '# HELP openvla_predictions_total Requests answered by the model.',
        '# TYPE openvla_predictions_total counter',
        f'openvla_predictions_total {snap["predictions_total"]}',
        '# HELP openvla_model_errors_total Model calls that raised.',
        '# TYPE openvla_model_errors_total counter',
        f'openvla_model_errors_total {snap["model_errors_total"]}',
        '# HELP openvla_queue_depth Requests waiting for the model.',
        '# TYPE openvla_queue_depth gauge',
        f'openvla_queue_depth {snap["queue_depth"]}',
        '# HELP openvla_batch_size Requests per model call.',
        '# TYPE openvla_batch_size histogram',
    ]
    cumulative, weighted = 0, 0
    for size, n in snap['batch_size_histogram'].items():
        cumulative += n
        weighted += int(size) * n
        lines.append(f'openvla_batch_size_bucket{{le="{size}"}} {cumulative}')
    lines += [
        f'openvla_batch_size_bucket{{le="+Inf"}} {cumulative}',
        f'openvla_batch_size_sum {weighted}',
        f'openvla_batch_size_count {cumulative}',
        '# HELP openvla_latency_seconds Recent request latency by stage (sliding window).',
        '# TYPE openvla_latency_seconds summary',
    ]
    for stage, stats in snap['latency_window'].items():
        for q, name in (('0.5', 'p50_s'), ('0.9', 'p90_s'), ('0.99', 'p99_s')):
            if stats[name] is not None:
                lines.append(
                    f'openvla_latency_seconds{{stage="{stage}",quantile="{q}"}} {stats[name]:.6f}'
                )
        lines.append(f'openvla_latency_seconds_count{{stage="{stage}"}} {stats["count"]}')
    return '\n'.join(lines) + '\n'


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (so 'address in use' is a clean error, not uvicorn's exit).

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_server(
    load_policy: Callable[[], PolicyLike],
    settings: ServerSettings,
    *,
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted; the model loads in the background (/health: loading -> ready).

    Raises:
        OSError: the address cannot be bound.
        Exception: whatever ``load_policy`` raised (the server stops when the load fails).
    """
    import uvicorn  # noqa: PLC0415

    if not settings.token and not is_loopback(settings.host):
        _LOG.warning(
            'listening on %s without a token: anyone who can reach this port can drive the '
            'robot; set --token or OPENVLA_ROS_TOKEN',
            settings.host,
        )
    sock = sock or bind_socket(settings.host, settings.port)
    app = create_app(None, settings)
    runtime: _Runtime = app.state.runtime
    server = uvicorn.Server(uvicorn_config(app, settings))

    def load() -> None:
        try:
            started = time.monotonic()
            runtime.set_policy(load_policy())
            _LOG.info(
                'model ready in %.1f s: %s',
                time.monotonic() - started,
                runtime.info().model_dump(),
            )
        except BaseException as exc:  # noqa: BLE001 - reported by run_server's caller
            runtime.set_failed(exc)
            server.should_exit = True

    _LOG.info('serving on http://%s:%d (loading the model...)', settings.host, settings.port)
    threading.Thread(target=load, name='openvla-load', daemon=True).start()
    try:
        with limit_log_rate():
            server.run(sockets=[sock])
    finally:
        runtime.stop()
        sock.close()
    if runtime.failure is not None:
        raise runtime.failure
