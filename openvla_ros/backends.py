"""Policy backends: where the policy node gets its actions from (pure, no rclpy).

A backend turns (RGB image, instruction) into a chunk of actions. ``local`` runs OpenVLA in this
process (``openvla_ros.model``); ``remote`` asks an ``openvla-ros serve`` server
(``openvla_ros.remote``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    'BACKENDS',
    'BackendConfig',
    'BackendResult',
    'LocalOpenVLABackend',
    'PolicyBackend',
    'make_backend',
]

BACKENDS = ('local', 'remote')


@dataclass(frozen=True)
class BackendResult:
    """One prediction: a chunk of actions (N, action_dim), its tokens and how long it took."""

    actions: np.ndarray
    tokens: tuple[int, ...]
    latency_s: float
    unnorm_key: str


@dataclass(frozen=True)
class BackendConfig:
    """Everything a backend needs to start; mirrors the policy node's parameters."""

    kind: str = 'local'
    model: str = 'openvla/openvla-7b'
    device: str = 'cpu'
    dtype: str = 'bfloat16'
    quantize: str = 'none'
    adapter: str = ''
    merge_adapter: bool = False
    center_crop: bool = False
    decode: str = 'fast'
    unnorm_key: str = ''
    server_url: str = 'http://127.0.0.1:8000'
    server_token: str = ''
    timeout_s: float = 1.0
    retries: int = 1

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise ValueError(f'backend {self.kind!r} is not one of {list(BACKENDS)}')


class PolicyBackend(Protocol):
    """What the policy node calls, from its worker thread."""

    model_name: str
    unnorm_key: str

    def predict(self, image_rgb: np.ndarray, instruction: str) -> BackendResult: ...

    def close(self) -> None: ...


class LocalOpenVLABackend:
    """OpenVLA in this process, through the inference core."""

    def __init__(self, config: BackendConfig) -> None:
        from openvla_ros.model.policy import OpenVLAPolicy  # noqa: PLC0415 - torch loads only when used

        self._policy = OpenVLAPolicy.load(
            config.model,
            device=config.device,
            dtype=config.dtype,
            quantize=config.quantize,
            adapter=config.adapter or None,
            merge_adapter=config.merge_adapter,
            center_crop=config.center_crop,
            decode=config.decode,
        )
        self.model_name = config.model
        # Resolve now so that an unknown key fails at start-up, with the list of keys, not at the
        # first frame.
        self.unnorm_key = self._policy.resolve_unnorm_key(config.unnorm_key or None)

    def predict(self, image_rgb: np.ndarray, instruction: str) -> BackendResult:
        p = self._policy.predict(image_rgb, instruction, self.unnorm_key)
        return BackendResult(
            actions=np.asarray(p.action, dtype=np.float64).reshape(1, -1),
            tokens=tuple(int(t) for t in p.tokens),
            latency_s=float(p.latency_s),
            unnorm_key=self.unnorm_key,
        )

    def close(self) -> None:
        self._policy = None


def make_backend(config: BackendConfig) -> PolicyBackend:
    """Builds the backend named by config.kind (loads the model for ``local``)."""
    if config.kind == 'local':
        return LocalOpenVLABackend(config)
    from openvla_ros.remote.client import RemoteBackend  # noqa: PLC0415

    return RemoteBackend(config)
