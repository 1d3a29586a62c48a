"""Remote inference: OpenVLA on a GPU machine, served over HTTP to robots that have none.

``server`` (FastAPI app with dynamic batching; ``openvla-ros serve``) runs next to the GPU;
``client`` (`OpenVLAClient`) runs on the robot computer and needs only httpx + numpy + pydantic.
The policy node's ``backend: remote`` is `openvla_ros.backends.RemoteBackend`, built on the
client; this package imports nothing from ``openvla_ros.backends`` (no import cycle). The server
names are imported lazily so that a robot computer without FastAPI can still use the client. See
docs/remote.md.
"""

from __future__ import annotations

from typing import Any

from openvla_ros.remote.client import (
    OpenVLAClient,
    RemoteError,
    RemotePrediction,
    ServerHTTPError,
    ServerNotReadyError,
    ServerTimeoutError,
    ServerUnreachableError,
    StaleAnswerError,
)
from openvla_ros.remote.protocol import Limits, ModelInfo, PredictRequest, PredictResponse

__all__ = [
    'Limits',
    'ModelInfo',
    'OpenVLAClient',
    'PredictRequest',
    'PredictResponse',
    'RemoteError',
    'RemotePrediction',
    'ServerHTTPError',
    'ServerNotReadyError',
    'ServerSettings',
    'ServerTimeoutError',
    'ServerUnreachableError',
    'StaleAnswerError',
    'create_app',
    'run_server',
]

_SERVER_NAMES = ('ServerSettings', 'create_app', 'run_server')


def __getattr__(name: str) -> Any:
    if name in _SERVER_NAMES:
        from openvla_ros.remote import server  # noqa: PLC0415 - FastAPI only where it serves

        return getattr(server, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
