"""Fine-tuning settings (defaults from OpenVLA's paper and `vla-scripts/finetune.py`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
import os
from typing import Any

__all__ = ['AMP_MODES', 'AUGMENT_MODES', 'FinetuneConfig', 'LR_SCHEDULES', 'QUANTIZE_MODES']

QUANTIZE_MODES: tuple[str, ...] = ('none', '4bit')
#: 'openvla': OpenVLA's random 90 % crop + colour jitter (deploy with center_crop);
#: 'camera': shifts of a few pixels + mild colour jitter, for a fixed third-person camera (the
#: scale stays that of inference, so the policy runs without a crop).
AUGMENT_MODES: tuple[str, ...] = ('none', 'openvla', 'camera')
LR_SCHEDULES: tuple[str, ...] = ('constant', 'cosine')
AMP_MODES: tuple[str, ...] = ('auto', 'none', 'bfloat16', 'float16')
#: Settings that must match between a checkpoint and a resumed run.
RESUME_KEYS: tuple[str, ...] = (
    'model',
    'data',
    'unnorm_key',
    'batch_size',
    'grad_accum',
    'lora_rank',
    'lora_alpha',
    'lora_dropout',
    'quantize',
    'augment',
    'val_fraction',
    'seed',
    'full',
)


@dataclass
class FinetuneConfig:
    """One fine-tuning run: LoRA (default) or full-parameter (`full`).

    Attributes:
        model: base checkpoint directory or hub id.
        data: dataset directory (`openvla-ros record --out`).
        out: output directory (adapter, statistics, checkpoints, `finetune.json`).
        unnorm_key: dataset statistics key the new robot's actions are un-normalized with.
        steps: optimizer steps in total (a resumed run continues up to this number).
        batch_size: samples per micro-batch.
        grad_accum: micro-batches per optimizer step.
        lr: AdamW learning rate (constant, as OpenVLA's finetune.py).
        lora_rank: LoRA rank.
        lora_alpha: LoRA alpha; None means min(rank, 16) as OpenVLA.
        lora_dropout: LoRA dropout.
        quantize: 'none' or '4bit' (QLoRA: NF4 base weights, needs CUDA).
        augment: 'none', 'openvla' (random crop of 90 % area + colour jitter; deploy with
            center_crop=True) or 'camera' (small shifts + mild jitter); True means 'openvla'.
        save_every: checkpoint every N optimizer steps (0: only at the end).
        eval_every: held-out metrics every N steps (0: at checkpoints and the end).
        keep_checkpoints: how many step checkpoints to keep (oldest are deleted).
        resume: continue from the last checkpoint in `out`.
        merge: also write a merged full checkpoint to `out/merged`.
        device: 'cpu' or 'cuda[:N]'.
        dtype: base weight dtype: 'float32' | 'bfloat16' | 'float16'.
        amp: autocast dtype; 'auto' = bfloat16 on CUDA, none on CPU.
        val_fraction: share of episodes held out (of steps when there is one episode).
        max_eval_batches: limit on held-out micro-batches per evaluation (0: all).
        weight_decay: AdamW weight decay (torch's default, which OpenVLA keeps).
        seed: seed of sampling order, augmentation, LoRA initialisation and the split.
        full: train every parameter (no LoRA); the output is a full checkpoint directory.
        fsdp: under torchrun, shard parameters and optimizer state with FSDP (needs `full`).
        dist_backend: torchrun process-group backend: 'auto' (nccl on CUDA, gloo on CPU),
            'gloo' or 'nccl'.
        lr_schedule: 'constant' (OpenVLA) or 'cosine' (to 10 % of lr at `steps`).
        warmup_steps: linear warm-up steps of the learning rate.
        workers: processes that build micro-batches ahead of the model (JPEG decode,
            augmentation, pre-processing); 0 builds them in the training process, -1 picks
            min(8, CPUs - 1) on CUDA and 0 on the CPU (where the model needs the cores).
        bin_sigma: 0 trains on OpenVLA's one-hot action tokens; > 0 spreads each action token's
            target over the neighbouring bins as a Gaussian of this many bins (HL-Gauss,
            Farebrother et al. 2024), so a prediction one bin off is nearly right instead of as
            wrong as any other; the argmax the policy decodes is still the expert's bin.
    """

    model: str
    data: str
    out: str
    unnorm_key: str = 'my_robot'
    steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 5e-4
    lora_rank: int = 32
    lora_alpha: int | None = None
    lora_dropout: float = 0.0
    quantize: str = 'none'
    augment: str | bool = 'none'
    save_every: int = 200
    eval_every: int = 0
    keep_checkpoints: int = 2
    resume: bool = False
    merge: bool = False
    device: str = 'cpu'
    dtype: str = 'float32'
    amp: str = 'auto'
    val_fraction: float = 0.1
    max_eval_batches: int = 0
    weight_decay: float = 0.01
    seed: int = 0
    full: bool = False
    fsdp: bool = False
    dist_backend: str = 'auto'
    lr_schedule: str = 'constant'
    warmup_steps: int = 0
    workers: int = -1
    bin_sigma: float = 0.0

    def __post_init__(self) -> None:
        """Check values early and name the field."""
        if not self.unnorm_key or not self.unnorm_key.strip():
            raise ValueError('unnorm_key is empty')
        for name in ('steps', 'batch_size', 'grad_accum', 'lora_rank'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        for name in ('save_every', 'eval_every', 'max_eval_batches'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.keep_checkpoints < 1:
            raise ValueError(f'keep_checkpoints must be >= 1, got {self.keep_checkpoints}')
        if not self.lr > 0:
            raise ValueError(f'lr must be > 0, got {self.lr}')
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f'lora_dropout must be in [0, 1), got {self.lora_dropout}')
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f'val_fraction must be in [0, 1), got {self.val_fraction}')
        if self.quantize not in QUANTIZE_MODES:
            raise ValueError(f'quantize must be one of {QUANTIZE_MODES}, got {self.quantize!r}')
        if self.workers < -1:
            raise ValueError(f'workers must be >= -1, got {self.workers}')
        if self.amp not in AMP_MODES:
            raise ValueError(f'amp must be one of {AMP_MODES}, got {self.amp!r}')
        if self.dtype not in ('float32', 'bfloat16', 'float16'):
            raise ValueError(f'dtype must be float32, bfloat16 or float16, got {self.dtype!r}')
        if not (self.device == 'cpu' or self.device.startswith('cuda')):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.quantize == '4bit' and not self.device.startswith('cuda'):
            raise ValueError('quantize=4bit (QLoRA) needs a CUDA device')
        if self.augment is True or self.augment is False:
            self.augment = 'openvla' if self.augment else 'none'
        if self.augment not in AUGMENT_MODES:
            raise ValueError(f'augment must be one of {AUGMENT_MODES}, got {self.augment!r}')
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f'lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}'
            )
        if self.warmup_steps < 0:
            raise ValueError(f'warmup_steps must be >= 0, got {self.warmup_steps}')
        if not self.bin_sigma >= 0:  # NaN too
            raise ValueError(f'bin_sigma must be >= 0, got {self.bin_sigma}')
        if self.dist_backend not in ('auto', 'gloo', 'nccl'):
            raise ValueError(
                f"dist_backend must be 'auto', 'gloo' or 'nccl', got {self.dist_backend!r}"
            )
        if self.fsdp and not self.full:
            raise ValueError('fsdp shards full-parameter runs (full=True); LoRA runs use DDP')
        if self.full and self.quantize != 'none':
            raise ValueError('full-parameter training needs unquantized weights (quantize=none)')
        if self.lora_alpha is None:
            self.lora_alpha = min(self.lora_rank, 16)

    @property
    def batch_workers(self) -> int:
        """The number of batch-building processes `workers` stands for."""
        if self.workers >= 0:
            return self.workers
        if not self.device.startswith('cuda'):
            return 0
        return max(0, min(8, (os.cpu_count() or 1) - 1))

    @property
    def autocast_dtype(self) -> str | None:
        """The autocast dtype name, or None for no mixed precision."""
        if self.amp == 'auto':
            return 'bfloat16' if self.device.startswith('cuda') else None
        return None if self.amp == 'none' else self.amp

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)
