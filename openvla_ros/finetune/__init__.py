"""LoRA fine-tuning of OpenVLA on a recorded dataset, and loading the result (no rclpy).

`Trainer(FinetuneConfig(model=..., data=..., out=...)).train()` trains and saves an adapter with
`dataset_statistics.json`; `load_finetuned_policy(base, adapter=out)` loads it for `predict`.
"""

from openvla_ros.finetune.batches import Batch, collate, IGNORE_INDEX, SampleBuilder, split_steps
from openvla_ros.finetune.config import FinetuneConfig
from openvla_ros.finetune.deploy import load_finetuned_policy
from openvla_ros.finetune.errors import CheckpointMismatchError, FinetuneError
from openvla_ros.finetune.lora import add_lora, linear_target_modules
from openvla_ros.finetune.trainer import (
    compute_loss,
    latest_checkpoint,
    merge_adapter,
    Metrics,
    Trainer,
)

__all__ = [
    'IGNORE_INDEX',
    'Batch',
    'CheckpointMismatchError',
    'FinetuneConfig',
    'FinetuneError',
    'Metrics',
    'SampleBuilder',
    'Trainer',
    'add_lora',
    'collate',
    'compute_loss',
    'latest_checkpoint',
    'linear_target_modules',
    'load_finetuned_policy',
    'merge_adapter',
    'split_steps',
]
