"""Fine-tuning of OpenVLA (LoRA, or every parameter with --full) on a dataset written by
`openvla-ros record`; runs unchanged under `torchrun` (DDP, or FSDP with --full --fsdp).

Writes OUT/adapter_model.safetensors + adapter_config.json (peft), OUT/dataset_statistics.json
(the base keys plus --unnorm-key), OUT/finetune.json (settings, held-out loss / action-token
accuracy / L1, loss history), step checkpoints under OUT/checkpoints, and with --merge a full
checkpoint in OUT/merged that `openvla-ros predict --model OUT/merged` loads directly.

Examples:

    openvla-ros finetune --model openvla/openvla-7b --data data/pick_block --out runs/pick \\
        --unnorm-key my_robot --steps 2000 --batch-size 16 --device cuda --dtype bfloat16 \\
        --augment --save-every 200 --merge
    openvla-ros finetune --model openvla/openvla-7b --data data/pick_block --out runs/pick \\
        --steps 2000 --device cuda --dtype bfloat16 --resume
    openvla-ros finetune --model openvla/openvla-7b --data data/pick_block --out runs/qlora \\
        --quantize 4bit --batch-size 8 --grad-accum 2 --device cuda --dtype bfloat16
    openvla-ros finetune --model /tmp/openvla-tiny --data data/pick_block --out /tmp/run \\
        --steps 20 --batch-size 2 --lora-rank 8 --json
    openvla-ros finetune --model /tmp/small --data data/lift --out runs/full --full \\
        --augment camera --lr 1e-3 --lr-schedule cosine --warmup-steps 50
    torchrun --nproc-per-node 8 $(which openvla-ros) finetune --model openvla/openvla-7b \\
        --data data/pick_block --out runs/pick --batch-size 128 --device cuda --dtype bfloat16
    torchrun --nproc-per-node 8 $(which openvla-ros) finetune --model openvla/openvla-7b \\
        --data data/pick_block --out runs/full --full --fsdp --batch-size 64 --device cuda

--batch-size is the global micro-batch (all ranks together), so a run means the same at any
world size; under torchrun only rank 0 prints and writes.

Known errors print one line on stderr and exit 1; with --json the last stdout line is one JSON
object (step, final train and held-out metrics, steps/s, output paths).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any, TYPE_CHECKING

from openvla_ros.cli.errors import CliError

if TYPE_CHECKING:
    from openvla_ros.finetune import Trainer

__all__ = ['add_arguments', 'main']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the verb's arguments."""
    parser.add_argument('--model', required=True, help='base checkpoint directory or hub id')
    parser.add_argument('--data', required=True, type=Path, help='dataset directory (record)')
    parser.add_argument('--out', required=True, type=Path, help='output directory')
    parser.add_argument('--unnorm-key', default='my_robot', help='new dataset statistics key')
    parser.add_argument('--steps', type=int, default=1000, help='optimizer steps in total')
    parser.add_argument('--batch-size', type=int, default=8, help='samples per micro-batch')
    parser.add_argument('--grad-accum', type=int, default=1, help='micro-batches per step')
    parser.add_argument('--lr', type=float, default=5e-4, help='AdamW learning rate (constant)')
    parser.add_argument('--lora-rank', type=int, default=32, help='LoRA rank')
    parser.add_argument(
        '--lora-alpha', type=int, default=None, help='LoRA alpha (default min(rank, 16))'
    )
    parser.add_argument('--lora-dropout', type=float, default=0.0, help='LoRA dropout')
    parser.add_argument(
        '--quantize', default='none', choices=('none', '4bit'), help='4bit: QLoRA (CUDA)'
    )
    parser.add_argument(
        '--augment',
        nargs='?',
        const='openvla',
        default='none',
        choices=('none', 'openvla', 'camera'),
        help="image augmentation: 'openvla' (bare --augment: random 90%% crop + colour jitter, "
        "deploy with --center-crop) or 'camera' (small shifts + mild jitter, fixed camera)",
    )
    parser.add_argument(
        '--full', action='store_true', help='train every parameter (no LoRA): full checkpoint'
    )
    parser.add_argument(
        '--fsdp', action='store_true', help='under torchrun with --full: shard with FSDP'
    )
    parser.add_argument(
        '--dist-backend',
        default='auto',
        choices=('auto', 'gloo', 'nccl'),
        help='torchrun backend (auto: nccl on CUDA, gloo on CPU)',
    )
    parser.add_argument(
        '--lr-schedule', default='constant', choices=('constant', 'cosine'), help='lr schedule'
    )
    parser.add_argument('--warmup-steps', type=int, default=0, help='linear lr warm-up steps')
    parser.add_argument(
        '--bin-sigma',
        type=float,
        default=0.0,
        help='spread each action token target over neighbouring bins as a Gaussian of this '
        'many bins (0: one-hot, as OpenVLA)',
    )
    parser.add_argument(
        '--workers',
        type=int,
        default=-1,
        help='processes that build batches ahead of the model (-1: 0 on the CPU, up to 8 on CUDA)',
    )
    parser.add_argument('--save-every', type=int, default=200, help='checkpoint every N steps')
    parser.add_argument('--eval-every', type=int, default=0, help='held-out metrics every N steps')
    parser.add_argument('--keep-checkpoints', type=int, default=2, help='checkpoints kept')
    parser.add_argument('--resume', action='store_true', help='continue from the last checkpoint')
    parser.add_argument('--merge', action='store_true', help='also write OUT/merged')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    parser.add_argument(
        '--dtype',
        default='float32',
        choices=('float32', 'bfloat16', 'float16'),
        help='base weight dtype',
    )
    parser.add_argument(
        '--amp',
        default='auto',
        choices=('auto', 'none', 'bfloat16', 'float16'),
        help='autocast (auto: bfloat16 on CUDA, none on CPU)',
    )
    parser.add_argument(
        '--val-fraction', type=float, default=0.1, help='held-out share of episodes'
    )
    parser.add_argument(
        '--max-eval-batches', type=int, default=0, help='held-out batches per evaluation'
    )
    parser.add_argument('--seed', type=int, default=0, help='seed (order, augmentation, init)')
    parser.add_argument('--json', action='store_true', help='print one JSON object at the end')


def main(args: argparse.Namespace) -> int:
    """Check inputs, train, save, print a summary (and leave torchrun's process group)."""
    try:
        return _main(args)
    finally:
        if 'torch' in sys.modules:
            from openvla_ros.finetune.distributed import shutdown

            shutdown()


def _main(args: argparse.Namespace) -> int:
    _check_arguments(args)
    trainer = _train(args)
    if not trainer.dist.is_main:
        return 0
    summary = json.loads((args.out / 'finetune.json').read_text())
    if args.json:
        print(json.dumps(_json_result(args, summary, trainer)))
    else:
        _print_summary(args, summary)
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuses a missing dataset and an absent CUDA device before anything loads."""
    if not args.data.is_dir():
        raise CliError(f'no dataset directory {args.data}')
    if args.device.startswith('cuda'):
        import torch

        if not torch.cuda.is_available():
            raise CliError(f'--device {args.device} requested but CUDA is not available')


def _train(args: argparse.Namespace) -> Trainer:
    """Builds the trainer (printing what it trains, on rank 0), trains and saves."""
    import logging

    from openvla_ros.data import DataError
    from openvla_ros.finetune import FinetuneConfig, FinetuneError, Trainer
    from openvla_ros.model import OpenVLAError

    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, format='%(message)s')
    try:
        config = FinetuneConfig(
            model=args.model,
            data=str(args.data),
            out=str(args.out),
            unnorm_key=args.unnorm_key,
            steps=args.steps,
            batch_size=args.batch_size,
            grad_accum=args.grad_accum,
            lr=args.lr,
            lora_rank=args.lora_rank,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            quantize=args.quantize,
            augment=args.augment,
            save_every=args.save_every,
            eval_every=args.eval_every,
            keep_checkpoints=args.keep_checkpoints,
            resume=args.resume,
            merge=args.merge,
            device=args.device,
            dtype=args.dtype,
            amp=args.amp,
            val_fraction=args.val_fraction,
            max_eval_batches=args.max_eval_batches,
            seed=args.seed,
            full=args.full,
            fsdp=args.fsdp,
            dist_backend=args.dist_backend,
            lr_schedule=args.lr_schedule,
            warmup_steps=args.warmup_steps,
            bin_sigma=args.bin_sigma,
            workers=args.workers,
        )
        trainer = Trainer(config, progress=not args.json)
        main_rank = trainer.dist.is_main
        if not args.json and main_rank:
            share = 100.0 * trainer.trainable / max(trainer.total, 1)
            mode = 'full' if args.full else 'LoRA'
            world = trainer.dist.world_size
            print(
                f'{mode}: {trainer.trainable:,} trainable of {trainer.total:,} parameters '
                f'({share:.2f} %); {len(trainer.train_steps)} training / '
                f'{len(trainer.val_steps)} held-out steps'
                + (f'; {world} ranks ({trainer.dist.backend})' if world > 1 else '')
                + (f'; resumed at step {trainer.step}' if trainer.resumed_from else '')
            )
        trainer.train()
    except (DataError, FinetuneError, OpenVLAError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f'{type(exc).__name__}: {exc}') from exc
    return trainer


def _json_result(
    args: argparse.Namespace, summary: dict[str, Any], trainer: Trainer
) -> dict[str, Any]:
    """The --json line: step, train and held-out metrics, speed, where the outputs are."""
    return {
        'step': summary['step'],
        'final_train': summary['final_train'],
        'initial_eval': summary['initial_eval'],
        'final_eval': summary['final_eval'],
        'steps_per_second': trainer.steps_per_second,
        'adapter': None if args.full else str(args.out),
        'checkpoint': str(args.out) if args.full else None,
        'world_size': trainer.dist.world_size,
        'unnorm_key': args.unnorm_key,
        'merged': summary['merged'],
        'resumed_from': summary['resumed_from'],
    }


def _print_summary(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    """Train loss, held-out metrics before and after, and how to use the result."""
    train = summary['final_train'] or {}
    print(f'step {summary["step"]}: train loss {train.get("loss", float("nan")):.4f}')
    if summary['initial_eval']:
        ev = summary['initial_eval']
        print(
            f'held-out before fine-tuning: loss {ev["loss"]:.4f}, action-token accuracy '
            f'{ev["accuracy"]:.3f}, L1 {ev["l1"]:.4f}'
        )
    if summary['final_eval']:
        ev = summary['final_eval']
        print(
            f'held-out: loss {ev["loss"]:.4f}, action-token accuracy {ev["accuracy"]:.3f}, '
            f'L1 {ev["l1"]:.4f}'
        )
    if args.full:
        print(f'checkpoint ({args.unnorm_key} in its norm_stats): predict --model {args.out}')
    else:
        print(f'adapter + dataset_statistics.json ({args.unnorm_key}) in {args.out}')
    if summary['merged']:
        print(f'merged checkpoint: {summary["merged"]}')
