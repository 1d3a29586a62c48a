"""`finetune` under torchrun: process group, per-rank data shards, metric reduction.

`torch.distributed` is used directly (DDP for LoRA and full-parameter runs, FSDP2's `fully_shard`
for `--fsdp`): the trainer already owns its loop, checkpoints and determinism, which a wrapper
such as accelerate would take over without adding anything this loop needs.

Batch semantics are the same at any world size: `batch_size` is the *global* micro-batch (all
ranks together) and `grad_accum` the micro-batches per optimizer step, so one optimizer step
always sees `batch_size * grad_accum` samples and the learning rate means the same thing.
Rank r of W builds the samples at global positions `index * batch_size + r + k * W` of the
run's sample order; every sample has the same number of labelled tokens (7 actions + EOS), so
DDP's mean of the per-rank gradients is exactly the single-process gradient of the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from typing import Any

import torch

from openvla_ros.finetune.errors import FinetuneError

__all__ = ['BACKENDS', 'DistContext', 'init_distributed', 'shard_positions', 'shutdown']

BACKENDS: tuple[str, ...] = ('auto', 'gloo', 'nccl')


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the run.

    Attributes:
        rank: global rank (0 in a single-process run).
        world_size: number of processes.
        local_rank: rank on this machine (the CUDA device index).
        backend: process-group backend, '' in a single-process run.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ''

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only one that writes files, logs metrics and shows progress."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64 on the CPU: gloo reduces CPU tensors)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        if self.backend == 'nccl':
            tensor = tensor.cuda()
        torch.distributed.all_reduce(tensor)
        return tensor.cpu().tolist()

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's `value` on every rank."""
        if not self.enabled:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, '')
    try:
        return int(raw) if raw else default
    except ValueError:
        raise FinetuneError(f'{name}={raw!r} is not an integer') from None


def init_distributed(device: str, backend: str = 'auto') -> tuple[DistContext, str]:
    """Join torchrun's process group when WORLD_SIZE > 1; returns the context and the device.

    Args:
        device: 'cpu' or 'cuda[:N]'; under torchrun 'cuda' becomes 'cuda:<LOCAL_RANK>'.
        backend: 'auto' (nccl on CUDA, gloo on CPU), 'gloo' or 'nccl'.

    Raises:
        FinetuneError: NCCL asked for on the CPU, fewer GPUs than local ranks, bad variables.
    """
    if backend not in BACKENDS:
        raise FinetuneError(f'dist backend must be one of {BACKENDS}, got {backend!r}')
    world = _env_int('WORLD_SIZE', 1)
    if world <= 1:
        return DistContext(), device
    rank = _env_int('RANK', 0)
    local_rank = _env_int('LOCAL_RANK', 0)
    cuda = device.startswith('cuda')
    if backend == 'nccl' and not cuda:
        raise FinetuneError(
            'the NCCL backend needs CUDA devices; use --dist-backend gloo (or auto) with '
            '--device cpu'
        )
    if cuda:
        if not torch.cuda.is_available():
            raise FinetuneError(f'--device {device} requested but CUDA is not available')
        if local_rank >= torch.cuda.device_count():
            raise FinetuneError(
                f'local rank {local_rank} has no GPU: {torch.cuda.device_count()} visible; '
                'lower --nproc-per-node'
            )
        device = f'cuda:{local_rank}'
        torch.cuda.set_device(local_rank)
    chosen = backend if backend != 'auto' else ('nccl' if cuda else 'gloo')
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=chosen)
    return DistContext(rank, world, local_rank, chosen), device


def shard_positions(index: int, batch_size: int, dist: DistContext) -> list[int]:
    """Global sample positions of micro-batch `index` that this rank builds.

    Raises:
        FinetuneError: the global batch does not split evenly over the ranks.
    """
    if batch_size % dist.world_size:
        raise FinetuneError(
            f'--batch-size {batch_size} (the global micro-batch) does not split evenly over '
            f'{dist.world_size} ranks; use a multiple of {dist.world_size}'
        )
    begin = index * batch_size
    return list(range(begin + dist.rank, begin + batch_size, dist.world_size))


def shutdown() -> None:
    """Leave the process group (no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
