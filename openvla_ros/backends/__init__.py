"""Policy backends: where the policy node gets its actions from (pure, no rclpy).

A backend turns (RGB image, instruction) into a chunk of actions. ``local`` runs OpenVLA in this
process (``openvla_ros.model``); ``remote`` asks an ``openvla-ros serve`` server
(``openvla_ros.remote``). The shared types live in `base`, each backend in its own module.
Importing this package loads neither torch (``local`` imports the model when one is built) nor
httpx (`RemoteBackend` is imported on first use).
"""

from __future__ import annotations

from typing import Any, TYPE_CHECKING

from openvla_ros.backends.base import BackendConfig, BackendResult, BACKENDS, PolicyBackend
from openvla_ros.backends.local import LocalOpenVLABackend

if TYPE_CHECKING:
    from openvla_ros.backends.remote import RemoteBackend

__all__ = [
    'BACKENDS',
    'BackendConfig',
    'BackendResult',
    'LocalOpenVLABackend',
    'PolicyBackend',
    'RemoteBackend',
    'make_backend',
]


def __getattr__(name: str) -> Any:
    if name == 'RemoteBackend':  # httpx + pydantic only where the remote backend is used
        from openvla_ros.backends.remote import RemoteBackend  # noqa: PLC0415

        return RemoteBackend
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def make_backend(config: BackendConfig) -> PolicyBackend:
    """Builds the backend named by config.kind (loads the model for ``local``)."""
    if config.kind == 'local':
        return LocalOpenVLABackend(config)
    from openvla_ros.backends.remote import RemoteBackend  # noqa: PLC0415

    return RemoteBackend(config)
