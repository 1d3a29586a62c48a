"""The client of the policy server: `OpenVLAClient`, and the errors every failure raises.

The policy node's ``remote`` backend (`openvla_ros.backends.RemoteBackend`) is built on it; this
module imports nothing from ``openvla_ros.backends``, so the dependency runs one way only.

Only httpx, numpy and pydantic are needed (no torch), so it runs on a robot computer without a
GPU. Every failure raises a `RemoteError` subclass whose message names the server and says what
happened, in one line, e.g. ``policy server http://10.0.0.5:8000 unreachable: connection
refused``; the policy node logs it, reports ERROR and publishes no action for that step.

An answer is used only if it is fresh: it must carry this request's id and arrive within the
request's time budget (``timeout_s``, retries included). Anything else is dropped and raises, so
a robot never acts on a frame it saw seconds ago.

    from openvla_ros.remote import OpenVLAClient

    with OpenVLAClient('http://gpu-box:8000', token='...') as client:
        action = client.act(rgb_uint8, 'put the spoon on the towel', 'bridge_orig')  # (7,)
"""

from __future__ import annotations

from dataclasses import dataclass
import io
import time
from typing import Any
import uuid

import httpx
import numpy as np

from openvla_ros.remote.protocol import encode_array, ModelInfo, PredictResponse

__all__ = [
    'OpenVLAClient',
    'RemoteError',
    'RemotePrediction',
    'ServerHTTPError',
    'ServerNotReadyError',
    'ServerTimeoutError',
    'ServerUnreachableError',
    'StaleAnswerError',
]

#: Pause between a failed attempt and its retry (kept short: the budget is the whole call).
RETRY_PAUSE_S = 0.05


class RemoteError(RuntimeError):
    """Base class of every policy-server failure seen by a client."""


class ServerUnreachableError(RemoteError):
    """No connection (refused, reset, DNS, closed before answering)."""


class ServerTimeoutError(RemoteError):
    """No answer within the request's time budget."""


class ServerHTTPError(RemoteError):
    """The server answered with an error status (the message carries its reason)."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class ServerNotReadyError(ServerHTTPError):
    """503: the model is still loading, failed to load, or the server is overloaded."""


class StaleAnswerError(RemoteError):
    """An answer that is late or belongs to another request: dropped, never acted on."""


@dataclass(frozen=True)
class RemotePrediction:
    """A server's answer to one request (see `PredictResponse`), with the round-trip time."""

    action: np.ndarray
    normalized_action: np.ndarray
    tokens: tuple[int, ...]
    unnorm_key: str
    batch_size: int
    queue_s: float
    model_s: float
    server_s: float
    round_trip_s: float
    model: ModelInfo


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if 'refused' in lowered:
        return 'connection refused'
    if isinstance(exc, httpx.RemoteProtocolError):
        return f'connection closed by the server ({text})'
    if 'name or service not known' in lowered or 'nodename nor servname' in lowered:
        return f'unknown host ({text})'
    return text


def _detail(response: httpx.Response) -> str:
    """The reason of an error response: our JSON error, /act's header, or the body's start."""
    header = response.headers.get('x-openvla-error')
    if header:
        return header
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict) and 'detail' in body:
        detail = body['detail']
        return detail if isinstance(detail, str) else str(detail)[:300]
    return str(body)[:200]


def _png_base64(image: np.ndarray) -> str:
    import base64  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='PNG', compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode('ascii')


class OpenVLAClient:
    """A small synchronous client of ``openvla-ros serve`` (thread-safe).

    Args:
        url: server address, e.g. ``http://127.0.0.1:8000``.
        token: bearer token (empty: none).
        timeout_s: time budget of one call, retries included.
        retries: extra attempts after a connection error or a 5xx answer (never after a 4xx).
        image_format: 'array' (raw uint8, json_numpy; no encoding cost) or 'png' (lossless,
            smaller on a slow link, costs a few ms of CPU per frame).
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        url: str = 'http://127.0.0.1:8000',
        token: str = '',
        *,
        timeout_s: float = 5.0,
        retries: int = 1,
        image_format: str = 'array',
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f'timeout_s must be > 0, got {timeout_s}')
        if retries < 0:
            raise ValueError(f'retries must be >= 0, got {retries}')
        if image_format not in ('array', 'png'):
            raise ValueError(f"image_format must be 'array' or 'png', got {image_format!r}")
        self.url = url.rstrip('/')
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.image_format = image_format
        headers = {'Authorization': f'Bearer {token}'} if token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, transport=transport, trust_env=False
        )

    # -- plumbing ---------------------------------------------------------------------------
    def _request(
        self, method: str, path: str, *, json_body: Any = None, timeout_s: float | None = None
    ) -> tuple[httpx.Response, float]:
        """One call within its budget: retries on connection errors and 5xx, not on 4xx.

        Returns:
            the response and the monotonic deadline it had to meet.
        """
        budget = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        timed_out = (
            f'policy server {self.url}: timed out after {round(budget, 3)} s ({method} {path})'
        )
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerTimeoutError(timed_out)
            try:
                response = self._http.request(
                    method, path, json=json_body, timeout=httpx.Timeout(remaining)
                )
            except httpx.TimeoutException:
                raise ServerTimeoutError(timed_out) from None
            except httpx.TransportError as exc:
                error: RemoteError = ServerUnreachableError(
                    f'policy server {self.url} unreachable: {_describe(exc)}'
                )
            else:
                if time.monotonic() > deadline:
                    raise StaleAnswerError(
                        f'policy server {self.url}: answer arrived after the {round(budget, 3)} s '
                        f'budget; dropped'
                    )
                if response.status_code < 400:
                    return response, deadline
                detail = _detail(response)
                cls = ServerNotReadyError if response.status_code == 503 else ServerHTTPError
                error = cls(
                    f'policy server {self.url}: HTTP {response.status_code}: {detail}',
                    response.status_code,
                    detail,
                )
                if response.status_code < 500:
                    raise error
            attempt += 1
            if attempt > self.retries or deadline - time.monotonic() <= RETRY_PAUSE_S:
                raise error
            time.sleep(RETRY_PAUSE_S)

    # -- API ----------------------------------------------------------------------------------
    def health(self, timeout_s: float | None = None) -> dict[str, Any]:
        """``GET /health`` as a dict (status 'ready', 'loading' or 'failed'); never raises for 503.

        Raises:
            ServerUnreachableError, ServerTimeoutError.
        """
        try:
            response, _ = self._request('GET', '/health', timeout_s=timeout_s)
        except ServerNotReadyError as exc:
            return {'status': 'not ready', 'detail': exc.detail}
        return response.json()

    def info(self, timeout_s: float | None = None) -> ModelInfo:
        """The model the server runs (``GET /v1/info``; checks the token too)."""
        response, _ = self._request('GET', '/v1/info', timeout_s=timeout_s)
        return ModelInfo.model_validate(response.json())

    def metrics(self) -> dict[str, Any]:
        """``GET /metrics`` (JSON)."""
        response, _ = self._request('GET', '/metrics')
        return response.json()

    def predict(
        self, image: np.ndarray, instruction: str, unnorm_key: str | None = None
    ) -> RemotePrediction:
        """One image (H x W x 3 uint8 RGB) + instruction -> the server's full answer.

        Raises:
            ValueError: the image is not H x W x 3 uint8.
            RemoteError: unreachable, timed out, HTTP error, or a stale answer.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'image must be H x W x 3 uint8 RGB, got {image.shape} {image.dtype}')
        request_id = uuid.uuid4().hex
        encoded = encode_array(image) if self.image_format == 'array' else _png_base64(image)
        body = {
            'image': encoded,
            'instruction': instruction,
            'unnorm_key': unnorm_key or None,
            'request_id': request_id,
        }
        start = time.monotonic()
        response, _ = self._request('POST', '/v1/predict', json_body=body)
        round_trip = time.monotonic() - start
        try:
            answer = PredictResponse.model_validate(response.json())
        except ValueError as exc:
            raise RemoteError(
                f'policy server {self.url}: answer is not a prediction: {exc}'
            ) from None
        if answer.request_id != request_id:
            raise StaleAnswerError(
                f'policy server {self.url}: answer belongs to request {answer.request_id!r}, '
                f'not {request_id!r}; dropped'
            )
        return RemotePrediction(
            action=np.asarray(answer.action, dtype=np.float64),
            normalized_action=np.asarray(answer.normalized_action, dtype=np.float64),
            tokens=tuple(answer.tokens),
            unnorm_key=answer.unnorm_key,
            batch_size=answer.batch_size,
            queue_s=answer.latency.queue_s,
            model_s=answer.latency.model_s,
            server_s=answer.latency.total_s,
            round_trip_s=round_trip,
            model=answer.model,
        )

    def act(
        self, image: np.ndarray, instruction: str, unnorm_key: str | None = None
    ) -> np.ndarray:
        """One image + instruction -> the action (action_dim,) float64."""
        return self.predict(image, instruction, unnorm_key).action

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenVLAClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
