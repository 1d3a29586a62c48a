"""Load a fine-tuned policy: base + adapter + the adapter's `dataset_statistics.json`.

`OpenVLAPolicy.load(base, adapter=dir)` merges the statistics saved beside the adapter (the new
unnorm key) into the base model's; a merged checkpoint (`finetune --merge`) carries them itself and
loads with `OpenVLAPolicy.load(out/merged)`. This is the fine-tuning side's entry point to both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ['load_finetuned_policy']


def load_finetuned_policy(
    model: str,
    *,
    adapter: str | Path | None = None,
    device: str = 'cpu',
    dtype: str = 'float32',
    quantize: str = 'none',
    merge_adapter: bool = True,
    center_crop: bool = False,
    decode: str = 'fast',
) -> Any:
    """An `OpenVLAPolicy` whose norm_stats include the adapter's dataset statistics.

    Args:
        model: base checkpoint directory or hub id (or a merged checkpoint, without adapter).
        adapter: the fine-tuning output directory (adapter + dataset_statistics.json).
        device: 'cpu' or 'cuda[:N]'.
        dtype: compute dtype.
        quantize: 'none' | '8bit' | '4bit'.
        merge_adapter: fold the adapter into the weights (faster inference).
        center_crop: set for models trained with `--augment`.
        decode: 'fast' or 'reference'.

    Raises:
        OpenVLAError subclasses: the checkpoint or adapter cannot be loaded.
    """
    from openvla_ros.model.policy import OpenVLAPolicy  # noqa: PLC0415 - torch loads only when used

    return OpenVLAPolicy.load(
        model,
        device=device,
        dtype=dtype,
        quantize=quantize,
        adapter=str(adapter) if adapter is not None else None,
        merge_adapter=merge_adapter and adapter is not None,
        center_crop=center_crop,
        decode=decode,
    )
