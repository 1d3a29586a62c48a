"""The ``local`` backend: OpenVLA in this process (torch is imported only when one is built)."""

from __future__ import annotations

import numpy as np

from openvla_ros.backends.base import BackendConfig, BackendResult

__all__ = ['LocalOpenVLABackend']


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
