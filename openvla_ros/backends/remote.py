"""The ``remote`` backend: actions from an ``openvla-ros serve`` server, over HTTP.

Built on `openvla_ros.remote.client.OpenVLAClient`. The dependency runs one way only (this module
imports ``openvla_ros.remote``; nothing in ``openvla_ros.remote`` imports the backends), so the
HTTP client stays usable on its own, e.g. from scripts. Needs httpx, numpy and pydantic; no torch.
"""

from __future__ import annotations

import time

import httpx
import numpy as np

from openvla_ros.backends.base import BackendConfig, BackendResult
from openvla_ros.remote.client import OpenVLAClient, RemoteError, ServerNotReadyError
from openvla_ros.remote.protocol import ModelInfo

__all__ = ['RemoteBackend']


class RemoteBackend:
    """The policy node's ``remote`` backend: actions from an ``openvla-ros serve`` server.

    At construction it asks the server which model it runs (``GET /v1/info``) and resolves the
    dataset key against the server's keys, so a wrong URL, token or key fails at start-up with a
    clear message. A server that is up but still loading the model is waited for, up to
    ``ready_timeout_s``.

    Raises:
        RemoteError: unreachable, wrong token, not ready in time.
        ValueError: the key is not one of the server's keys (the message lists them).
    """

    def __init__(
        self,
        config: BackendConfig,
        *,
        ready_timeout_s: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = OpenVLAClient(
            config.server_url,
            config.server_token,
            timeout_s=config.timeout_s,
            retries=config.retries,
            transport=transport,
        )
        try:
            info = self._wait_for_info(max(config.timeout_s, 2.0), ready_timeout_s)
            self.info = info
            self.model_name = info.name
            self.unnorm_key = self._resolve_key(config.unnorm_key, info)
        except BaseException:
            self._client.close()
            raise

    def _wait_for_info(self, call_timeout_s: float, ready_timeout_s: float) -> ModelInfo:
        give_up = time.monotonic() + ready_timeout_s
        while True:
            try:
                return self._client.info(timeout_s=call_timeout_s)
            except ServerNotReadyError as exc:
                if time.monotonic() + 0.5 > give_up:
                    raise ServerNotReadyError(
                        f'{exc} (still not ready after {ready_timeout_s:.0f} s)',
                        exc.status,
                        exc.detail,
                    ) from None
                time.sleep(0.5)

    def _resolve_key(self, key: str, info: ModelInfo) -> str:
        url = self._client.url
        if not key:
            if info.default_unnorm_key is None:
                raise ValueError(
                    f'policy server {url}: the model has several dataset statistics; set '
                    f'unnorm_key to one of {info.unnorm_keys}'
                )
            return info.default_unnorm_key
        if key not in info.unnorm_keys:
            raise ValueError(
                f'policy server {url}: unnorm_key {key!r} is not one of {info.unnorm_keys}'
            )
        return key

    def predict(self, image_rgb: np.ndarray, instruction: str) -> BackendResult:
        """One step: raises `RemoteError` (no action) on any failure or stale answer."""
        answer = self._client.predict(image_rgb, instruction, self.unnorm_key)
        actions = answer.action.reshape(1, -1)
        if actions.shape[1] != self.info.action_dim:
            raise RemoteError(
                f'policy server {self._client.url}: action has {actions.shape[1]} values, '
                f'expected {self.info.action_dim}'
            )
        return BackendResult(
            actions=actions,
            tokens=answer.tokens,
            latency_s=answer.round_trip_s,
            unnorm_key=answer.unnorm_key,
        )

    def close(self) -> None:
        self._client.close()
