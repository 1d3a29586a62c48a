"""The shared types of the policy backends: what a backend is given, returns and promises.

Kept apart from the backends themselves so that both the local and the remote backend import
them without importing each other (pure: numpy only, no torch, no httpx, no rclpy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ['BACKENDS', 'BackendConfig', 'BackendResult', 'PolicyBackend']

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
