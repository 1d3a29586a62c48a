"""The training loop (LoRA or full-parameter): AMP, gradient accumulation, checkpoints, resume,
held-out metrics, and torchrun (DDP; FSDP for full-parameter runs; `finetune.distributed`).

Training goes through our model code (`OpenVLAForActionPrediction`): BOS, the projected patches,
then the rest of the tokens, as at inference; the language model's hidden states are turned into
logits only where a label exists (the 7 action tokens and EOS), which gives the same loss as
OpenVLA's full-sequence cross-entropy with IGNORE_INDEX without a (B, T, 32064) logits tensor.

Determinism: the sample at global position g is `permutation_{g // N}[g % N]` (a fresh seeded
permutation per epoch) and its augmentation is seeded by g, so a resumed run sees exactly the
batches an uninterrupted run would have seen.

Output directory::

    OUT/
      adapter_config.json, adapter_model.safetensors   LoRA: the final adapter (peft)
      config.json, model-*.safetensors, tokenizer ...  full: an ordinary OpenVLA checkpoint
                                                       (norm_stats include the new key)
      dataset_statistics.json                          base keys + the new unnorm key
      finetune.json                                    settings, metrics, loss history
      checkpoints/step_000200/                         adapter (LoRA) or model_state.safetensors
                                                       (full, float32) + trainer_state.pt
                                                       (optimizer, scheduler, step, history, RNG)
      merged/                                          LoRA with --merge: a full checkpoint

Under torchrun only rank 0 writes; every rank reads a checkpoint to resume, at any world size
(the sample order is a function of the global position, and the optimizer state is saved whole).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
import json
import logging
import math
from pathlib import Path
import random
import shutil
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from openvla_ros.data.dataset import Dataset
from openvla_ros.data.statistics import read_statistics_file, write_statistics_file
from openvla_ros.finetune.batches import Batch, collate, IGNORE_INDEX, SampleBuilder, split_steps
from openvla_ros.finetune.config import FinetuneConfig, RESUME_KEYS
from openvla_ros.finetune.distributed import init_distributed, shard_positions
from openvla_ros.finetune.errors import CheckpointMismatchError, FinetuneError
from openvla_ros.finetune.lora import add_lora, trainable_parameters
from openvla_ros.model import constants as const
from openvla_ros.model.action_tokenizer import ActionStats, ActionTokenizer

__all__ = [
    'LossModule',
    'action_token_loss',
    'Metrics',
    'Trainer',
    'compute_loss',
    'latest_checkpoint',
    'save_full_checkpoint',
]

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = 'checkpoints'
STATE_NAME = 'trainer_state.pt'
MODEL_STATE_NAME = 'model_state.safetensors'
SUMMARY_NAME = 'finetune.json'
MERGED_DIR = 'merged'


@dataclass
class Metrics:
    """Loss and OpenVLA's action metrics of one batch (or averaged over several).

    Attributes:
        loss: mean cross-entropy over the action tokens and EOS.
        accuracy: share of action tokens predicted exactly (EOS excluded, as OpenVLA).
        l1: mean |predicted - true| normalized action over the action tokens.
        tokens: number of action tokens the metrics count.
    """

    loss: float
    accuracy: float
    l1: float
    tokens: int = 0

    def to_dict(self) -> dict[str, float]:
        return {'loss': self.loss, 'accuracy': self.accuracy, 'l1': self.l1}


def action_token_loss(
    logits: torch.Tensor, gold: torch.Tensor, tokenizer: ActionTokenizer, bin_sigma: float
) -> torch.Tensor:
    """Cross-entropy of `logits` (M, V) against `gold` (M,); with `bin_sigma` > 0 an action
    token's target is a Gaussian over the action-token ids around it (truncated to them and
    renormalised; its mode stays the gold bin), other tokens (the stop token) stay one-hot."""
    if bin_sigma <= 0:
        return nn.functional.cross_entropy(logits, gold)
    first = tokenizer.action_token_begin_idx + 1
    ids = torch.arange(first, tokenizer.vocab_size, device=logits.device)  # (n_bins,)
    log_probs = torch.log_softmax(logits, dim=-1)  # (M, V)
    hard = -log_probs.gather(1, gold[:, None])[:, 0]  # (M,)
    is_action = (gold >= first) & (gold < tokenizer.vocab_size)
    # a non-action row's Gaussian is centred inside the range too: all-zero weights there would
    # be 0/0, and torch.where passes that NaN to the gradient though it selects `hard`
    centre = gold.clamp(first, tokenizer.vocab_size - 1)
    weights = torch.exp(-((ids[None, :] - centre[:, None]).float() ** 2) / (2 * bin_sigma**2))
    weights = weights / weights.sum(dim=1, keepdim=True)  # (M, n_bins)
    soft = -(weights * log_probs[:, first : tokenizer.vocab_size]).sum(dim=1)  # (M,)
    return torch.where(is_action, soft, hard).mean()


def compute_loss(
    core: nn.Module, batch: Batch, tokenizer: ActionTokenizer, bin_sigma: float = 0.0
) -> tuple[torch.Tensor, Metrics]:
    """Teacher-forced loss and metrics of one batch.

    Args:
        core: the `OpenVLAForActionPrediction` (LoRA layers injected in place by peft).
        batch: a right-padded batch.
        tokenizer: the action tokenizer (which ids are action tokens, how they decode).
        bin_sigma: Gaussian width (in bins) of the action tokens' soft targets; 0: one-hot
            (`action_token_loss`).

    Returns:
        The loss tensor (for backward) and the metrics.
    """
    device = core.device
    input_ids = batch.input_ids.to(device)  # (B, L)
    mask = batch.attention_mask.to(device)  # (B, L)
    labels = batch.labels.to(device)  # (B, L)
    patches = core.embed_images(batch.pixel_values)  # (B, N, H)
    text = core.get_input_embeddings()(input_ids)  # (B, L, H)
    patches = patches.to(text.dtype)
    batch_size, num_patches = patches.shape[:2]
    embeds = torch.cat([text[:, :1], patches, text[:, 1:]], dim=1)  # (B, 1 + N + L - 1, H)
    ones = mask.new_ones(batch_size, num_patches)
    full_mask = torch.cat([mask[:, :1], ones, mask[:, 1:]], dim=1)  # (B, T)
    ignore = labels.new_full((batch_size, num_patches), IGNORE_INDEX)
    full_labels = torch.cat([labels[:, :1], ignore, labels[:, 1:]], dim=1)  # (B, T)
    lm = core.language_model
    hidden = lm.model(
        inputs_embeds=embeds, attention_mask=full_mask, use_cache=False
    ).last_hidden_state  # (B, T, H)
    targets = full_labels[:, 1:]  # (B, T - 1): position t predicts token t + 1
    where = targets != IGNORE_INDEX
    logits = lm.lm_head(hidden[:, :-1][where]).float()  # (M, V)
    gold = targets[where]  # (M,)
    loss = action_token_loss(logits, gold, tokenizer, bin_sigma)
    with torch.no_grad():
        preds = logits.argmax(dim=-1)  # (M,)
        is_action = gold > tokenizer.action_token_begin_idx
        count = int(is_action.sum())
        accuracy = float((preds[is_action] == gold[is_action]).float().mean()) if count else 0.0
        pred_actions = tokenizer.decode(preds[is_action].cpu().numpy())
        gold_actions = tokenizer.decode(gold[is_action].cpu().numpy())
        l1 = float(np.abs(pred_actions - gold_actions).mean()) if count else 0.0
    return loss, Metrics(float(loss.detach()), accuracy, l1, count)


class LossModule(nn.Module):
    """`compute_loss` as a module, so that DDP/FSDP see a forward call (their gradient and
    all-gather hooks run in `__call__`); the metrics of the last call are kept in `metrics`."""

    def __init__(
        self, core: nn.Module, tokenizer: ActionTokenizer, bin_sigma: float = 0.0
    ) -> None:
        super().__init__()
        self.core = core
        self.tokenizer = tokenizer
        self.bin_sigma = bin_sigma
        self.metrics = Metrics(float('nan'), 0.0, 0.0, 0)

    def forward(self, batch: Batch) -> torch.Tensor:
        loss, self.metrics = compute_loss(self.core, batch, self.tokenizer, self.bin_sigma)
        return loss


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step in `out_dir/checkpoints`, or None."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    done = [p for p in root.glob('step_*') if (p / STATE_NAME).is_file()]
    return max(done, key=lambda p: int(p.name.split('_')[1]), default=None)


@dataclass
class _History:
    train: list[dict[str, float]] = field(default_factory=list)
    eval: list[dict[str, float]] = field(default_factory=list)


@dataclass
class MicroBatches:
    """The training micro-batches of a run as a sequence: item `index` is this rank's share of
    the `index`-th global micro-batch, a pure function of the index (the sample at global
    position g is `permutation_{g // N}[g % N]` of the N training steps). Picklable, so
    DataLoader workers can build batches ahead of the model."""

    builder: SampleBuilder
    train_steps: list[tuple[int, int]]
    batch_size: int
    seed: int
    dist: Any
    pad_token_id: int

    def position(self, position: int) -> tuple[int, int]:
        """(episode, step) at a global sample position."""
        n = len(self.train_steps)
        epoch, offset = divmod(position, n)
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        return self.train_steps[int(order[offset])]

    def __getitem__(self, index: int) -> Batch:
        samples = []
        for position in shard_positions(index, self.batch_size, self.dist):
            episode, step = self.position(position)
            samples.append(self.builder.build(episode, step, sample_index=position))
        return collate(samples, self.pad_token_id)


@dataclass
class _Window:
    """Items `first` .. `first + count - 1` of a `MicroBatches` (a DataLoader dataset)."""

    batches: MicroBatches
    first: int
    count: int

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> Batch:
        return self.batches[self.first + i]


def _as_is(batch: Batch) -> Batch:
    """DataLoader collate for items that are batches already."""
    return batch


class Trainer:
    """Fine-tuning of an OpenVLA checkpoint on a recorded dataset (LoRA, or every parameter).

    Under torchrun (WORLD_SIZE > 1) it joins the process group, builds only its rank's share of
    each global micro-batch, wraps the model in DDP (or FSDP with `fsdp`), reduces the metrics
    over ranks, and writes files from rank 0 only.

    Args:
        config: the run settings.
        progress: show a tqdm bar (rank 0 only).

    Raises:
        DatasetFormatError, EmptyDatasetError: the dataset is unusable.
        OpenVLAError subclasses: the base model cannot be loaded.
        FinetuneError: the output directory holds a run and `resume` is off, nothing to train,
            a batch that does not split over the ranks, NCCL on the CPU.
        CheckpointMismatchError: resuming with incompatible settings.
    """

    def __init__(self, config: FinetuneConfig, *, progress: bool = True) -> None:
        self.config = config
        self.dist, self.device = init_distributed(config.device, config.dist_backend)
        self.progress = progress and self.dist.is_main
        self.out = Path(config.out)
        if config.fsdp and not self.dist.enabled:
            logger.info('fsdp: a single process has nothing to shard; training unsharded')
        shard_positions(0, config.batch_size, self.dist)  # fails early on an uneven batch
        self.dataset = Dataset(config.data)
        self._check_out_dir()
        self.entry = self.dataset.statistics()
        self.stats = ActionStats.from_dict(self.entry['action'], key=config.unnorm_key)
        self.train_steps, self.val_steps = split_steps(
            self.dataset, config.val_fraction, config.seed
        )
        if not self.train_steps:
            raise FinetuneError('no training steps left after the held-out split')
        if len(self.train_steps) < self.dist.world_size:
            raise FinetuneError(
                f'{len(self.train_steps)} training steps cannot feed {self.dist.world_size} ranks'
            )
        self.step = 0
        self.history = _History()
        self.resumed_from: Path | None = None
        checkpoint = latest_checkpoint(self.out) if config.resume else None
        state = self._read_state(checkpoint) if checkpoint is not None else None
        self._load_model(checkpoint)
        self._wrap()
        params = [p for p in self.loss_module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        if state is not None and checkpoint is not None:
            self._restore(checkpoint, state)

    # --- setup ------------------------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        config = self.config
        return lr_factor(step, config.steps, config.warmup_steps, config.lr_schedule)

    def _check_out_dir(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise FinetuneError(f'{self.out} exists and is not a directory')
        has_run = (self.out / SUMMARY_NAME).is_file() or latest_checkpoint(self.out) is not None
        if has_run and not self.config.resume:
            raise FinetuneError(
                f'{self.out} already holds a fine-tuning run: pass resume to continue it, '
                'or choose another output directory'
            )

    def _load_model(self, checkpoint: Path | None) -> None:
        from openvla_ros.model.loading import load_model
        from openvla_ros.model.processor import OpenVLAProcessor

        config = self.config
        torch.manual_seed(config.seed)  # LoRA initialisation
        loaded = load_model(
            config.model,
            device=self.device,
            dtype='float32' if config.full else config.dtype,
            quantize=config.quantize,
            progress=self.progress,
        )
        self.base_config = loaded.config
        self.base_stats = dict(loaded.config.norm_stats or {})
        self.model_dir = loaded.model_dir
        self.processor = OpenVLAProcessor(loaded.tokenizer, loaded.image_config)
        self.tokenizer = ActionTokenizer(
            loaded.config.action_vocab_size, loaded.config.n_action_bins
        )
        self.pad_token_id = int(loaded.config.pad_token_id)
        self.core = loaded.model
        if config.full:
            self.peft_model = None
            for param in self.core.parameters():
                param.requires_grad_(True)
            if checkpoint is not None:
                from safetensors.torch import load_file

                weights = load_file(str(checkpoint / MODEL_STATE_NAME))
                missing, unexpected = self.core.load_state_dict(weights, strict=False)
                if missing or unexpected:
                    raise CheckpointMismatchError(
                        f'{checkpoint}: model state does not match the model '
                        f'(missing {missing[:3]}, unexpected {unexpected[:3]})'
                    )
            self.core.train()
        else:
            assert config.lora_alpha is not None
            self.peft_model = add_lora(
                loaded.model,
                rank=config.lora_rank,
                alpha=config.lora_alpha,
                dropout=config.lora_dropout,
            )
            self.peft_model.to(self.device)
            if checkpoint is not None:
                self._load_adapter(checkpoint)
        self.trainable, self.total = trainable_parameters(self.core)
        self.builder = SampleBuilder(
            self.dataset,
            self.processor,
            self.stats,
            self.tokenizer,
            augment=config.augment,
            seed=config.seed,
        )
        self.eval_builder = SampleBuilder(self.dataset, self.processor, self.stats, self.tokenizer)
        self.batches = MicroBatches(
            self.builder, self.train_steps, config.batch_size, config.seed, self.dist,
            self.pad_token_id,
        )  # fmt: skip

    def _wrap(self) -> None:
        """DDP (or FSDP) around the loss module under torchrun; the plain module otherwise."""
        self.loss_module = LossModule(self.core, self.tokenizer, self.config.bin_sigma)
        self.model: nn.Module = self.loss_module
        self.sharded = False
        if not self.dist.enabled:
            return
        if self.config.fsdp:
            from torch.distributed.fsdp import fully_shard

            for vit in (
                self.core.vision_backbone.featurizer,
                self.core.vision_backbone.fused_featurizer,
            ):
                for block in vit.blocks:
                    fully_shard(block)
            for layer in self.core.language_model.model.layers:
                fully_shard(layer)
            fully_shard(self.loss_module)
            self.sharded = True
            return
        from torch.nn.parallel import DistributedDataParallel

        # the vision towers' last blocks are never run (OpenVLA reads the penultimate block)
        self.model = DistributedDataParallel(
            self.loss_module,
            device_ids=[self.dist.local_rank] if self.device.startswith('cuda') else None,
            find_unused_parameters=True,
        )

    # --- data -------------------------------------------------------------------------------
    def micro_batch(self, index: int) -> Batch:
        """This rank's share of the `index`-th global training micro-batch (a pure function of
        the index and the rank)."""
        return self.batches[index]

    def _micro_batches(self, first: int, count: int) -> Iterator[Batch]:
        """Micro-batches `first`, `first + 1`, ... in order; built ahead by `workers` processes
        (the same batches as in-process: each is a pure function of its index)."""
        workers = self.config.batch_workers
        if workers == 0:
            return (self.batches[first + i] for i in range(count))
        from torch.utils.data import DataLoader

        loader = DataLoader(
            _Window(self.batches, first, count),
            batch_size=None,
            num_workers=workers,
            prefetch_factor=4,
            pin_memory=self.device.startswith('cuda'),
            collate_fn=_as_is,
        )
        return iter(loader)

    # --- loop -------------------------------------------------------------------------------
    def _autocast(self) -> Any:
        name = self.config.autocast_dtype
        if name is None:
            return nullcontext()
        device_type = 'cuda' if self.device.startswith('cuda') else 'cpu'
        return torch.autocast(device_type, dtype=getattr(torch, name))

    def _no_sync(self, last: bool) -> Any:
        """Skip DDP's all-reduce on all but the last micro-batch of a step."""
        if last or not hasattr(self.model, 'no_sync'):
            return nullcontext()
        return self.model.no_sync()

    def train(self, *, stop_after: int | None = None, on_step: Callable | None = None) -> None:
        """Run optimizer steps up to `config.steps` (or `stop_after` steps, to simulate an
        interruption), checkpointing every `save_every` steps and at the end.

        Args:
            stop_after: stop after this global step without the final save.
            on_step: called with (step, Metrics) after each optimizer step.
        """
        from tqdm.auto import tqdm

        config = self.config
        self.model.train()
        scaler = torch.amp.GradScaler(enabled=config.autocast_dtype == 'float16')
        bar = tqdm(
            total=config.steps,
            initial=self.step,
            desc='Fine-tuning' + (' (full)' if config.full else ' (LoRA)'),
            unit='step',
            disable=not self.progress,
        )
        if self.step == 0 and self.val_steps and not self.history.eval:
            self._record_eval()  # held-out metrics of the base model, before any update
        start = time.perf_counter()
        first_step = self.step
        try:
            batches = self._micro_batches(
                self.step * config.grad_accum, (config.steps - self.step) * config.grad_accum
            )
            while self.step < config.steps:
                parts: list[Metrics] = []
                for micro in range(config.grad_accum):
                    batch = next(batches)
                    with self._no_sync(micro == config.grad_accum - 1):
                        with self._autocast():
                            loss = self.model(batch)
                        scaler.scale(loss / config.grad_accum).backward()
                    parts.append(self.loss_module.metrics)
                scaler.step(self.optimizer)
                scaler.update()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                merged = self._reduce(_mean(parts))
                if not math.isfinite(merged.loss):
                    raise FinetuneError(f'the loss is not finite at step {self.step}')
                lr = self.scheduler.get_last_lr()[0]
                record = {'step': self.step, **merged.to_dict(), 'lr': lr}
                self.history.train.append(record)
                bar.update(1)
                bar.set_postfix(loss=f'{merged.loss:.4f}', acc=f'{merged.accuracy:.2f}')
                if on_step is not None:
                    on_step(self.step, merged)
                save_now = config.save_every and self.step % config.save_every == 0
                eval_now = config.eval_every and self.step % config.eval_every == 0
                if (save_now or eval_now) and self.val_steps:
                    self._record_eval()
                if save_now and self.step < config.steps:
                    self.save_checkpoint()
                if stop_after is not None and self.step >= stop_after:
                    return
        except KeyboardInterrupt:  # Ctrl-C or a time limit's SIGINT: keep what was learned
            if self.step > first_step and not self.dist.enabled:
                self.save_checkpoint()
            raise
        finally:
            bar.close()
            elapsed = time.perf_counter() - start
            self.steps_per_second = (self.step - first_step) / elapsed if elapsed > 0 else 0.0
        evaluated = bool(self.history.eval) and self.history.eval[-1]['step'] == self.step
        if self.val_steps and not evaluated:
            self._record_eval()
        self.save_checkpoint()
        self.save_final()

    def _reduce(self, metrics: Metrics) -> Metrics:
        """The metrics of the whole global batch (token-weighted over ranks)."""
        if not self.dist.enabled:
            return metrics
        n = float(metrics.tokens)
        loss, acc, l1, tokens = self.dist.all_reduce_sum(
            [metrics.loss * n, metrics.accuracy * n, metrics.l1 * n, n]
        )
        if tokens <= 0:
            return Metrics(float('nan'), 0.0, 0.0, 0)
        return Metrics(loss / tokens, acc / tokens, l1 / tokens, int(tokens))

    def _record_eval(self) -> None:
        metrics = self.evaluate()
        self.history.eval.append({'step': self.step, **metrics.to_dict()})
        if self.dist.is_main:
            logger.info(
                'step %d held-out: loss %.4f, accuracy %.3f, L1 %.4f',
                self.step,
                metrics.loss,
                metrics.accuracy,
                metrics.l1,
            )
        self.model.train()

    @torch.no_grad()
    def evaluate(self, steps: list[tuple[int, int]] | None = None) -> Metrics:
        """Loss, action-token accuracy and L1 (normalized actions) on held-out steps.

        Under torchrun the micro-batches are dealt round-robin to the ranks (each rank runs the
        same number of forwards, as FSDP needs; padding batches count zero) and reduced.

        Args:
            steps: (episode, step) pairs; default the held-out split.

        Raises:
            FinetuneError: no steps to evaluate.
        """
        steps = self.val_steps if steps is None else steps
        if not steps:
            raise FinetuneError('no held-out steps (val_fraction is 0 or the dataset too small)')
        self.model.eval()
        size = self.config.batch_size
        chunks = [steps[b : b + size] for b in range(0, len(steps), size)]
        if self.config.max_eval_batches:
            chunks = chunks[: self.config.max_eval_batches]
        world, rank = self.dist.world_size, self.dist.rank
        rounds = -(-len(chunks) // world)
        # DDP: the plain module (no collectives); FSDP: the sharded one (all-gathers per call)
        module = self.model if self.sharded else self.loss_module
        sums = [0.0, 0.0, 0.0, 0.0, 0.0]  # loss, acc * tokens, l1 * tokens, tokens, batches
        for r in range(rounds):
            index = r * world + rank
            weight = 1.0 if index < len(chunks) else 0.0
            chunk = chunks[min(index, len(chunks) - 1)]
            batch = collate([self.eval_builder.build(e, s) for e, s in chunk], self.pad_token_id)
            with self._autocast():
                module(batch)
            m = self.loss_module.metrics
            sums = [
                sums[0] + weight * m.loss,
                sums[1] + weight * m.accuracy * m.tokens,
                sums[2] + weight * m.l1 * m.tokens,
                sums[3] + weight * m.tokens,
                sums[4] + weight,
            ]
        loss, acc, l1, tokens, count = self.dist.all_reduce_sum(sums)
        if count <= 0:
            return Metrics(float('nan'), 0.0, 0.0, 0)
        tokens_or_one = tokens or 1.0
        return Metrics(loss / count, acc / tokens_or_one, l1 / tokens_or_one, int(tokens))

    # --- saving -----------------------------------------------------------------------------
    def _statistics(self) -> dict[str, Any]:
        return {**self.base_stats, self.config.unnorm_key: self.entry}

    def _full_states(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Whole (gathered) float model and optimizer state dicts of a full-parameter run.

        Collective under FSDP: every rank calls it; the tensors are complete on every rank.
        """
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            get_optimizer_state_dict,
            StateDictOptions,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=self.sharded)
        model = get_model_state_dict(self.core, options=options)
        optim = get_optimizer_state_dict(self.core, self.optimizer, options=options)
        return model, optim

    def save_checkpoint(self) -> Path:
        """Write `checkpoints/step_N/` (weights, statistics, trainer state) and prune old ones.

        Every rank calls it (FSDP gathers collectively); only rank 0 writes.
        """
        root = self.out / CHECKPOINTS_DIR
        path = root / f'step_{self.step:06d}'
        if self.config.full:
            model_state, optim_state = self._full_states()
        else:
            model_state, optim_state = {}, self.optimizer.state_dict()
        if self.dist.is_main:
            path.mkdir(parents=True, exist_ok=True)
            if self.config.full:
                from safetensors.torch import save_file

                save_file(
                    {k: v.detach().float().cpu().contiguous() for k, v in model_state.items()},
                    str(path / MODEL_STATE_NAME),
                )
            else:
                assert self.peft_model is not None
                self.peft_model.save_pretrained(str(path))
            write_statistics_file(
                path / const.DATASET_STATISTICS_NAME,
                self.config.unnorm_key,
                self.entry,
                base=self.base_stats,
            )
            state = {
                'step': self.step,
                'optimizer': optim_state,
                'scheduler': self.scheduler.state_dict(),
                'history': {'train': self.history.train, 'eval': self.history.eval},
                'config': self.config.to_dict(),
                'world_size': self.dist.world_size,
                'rng': {
                    'python': random.getstate(),
                    'numpy': np.random.get_state(),
                    'torch': torch.get_rng_state(),
                    'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                },
            }
            tmp = path / (STATE_NAME + '.tmp')
            torch.save(state, tmp)
            tmp.replace(path / STATE_NAME)  # written last: a checkpoint without it is incomplete
            done = sorted(
                (p for p in root.glob('step_*') if (p / STATE_NAME).is_file()),
                key=lambda p: int(p.name.split('_')[1]),
            )
            for old in done[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.dist.barrier()
        return path

    def _read_state(self, path: Path) -> dict[str, Any]:
        """The trainer state of a checkpoint, after checking that its settings match."""
        state = torch.load(path / STATE_NAME, map_location='cpu', weights_only=False)
        saved = state.get('config', {})
        current = self.config.to_dict()
        if saved.get('augment') in (True, False):  # runs from before augmentation modes
            saved = {**saved, 'augment': 'openvla' if saved['augment'] else 'none'}
        saved.setdefault('full', False)
        diffs = [
            f'{k}: checkpoint {saved.get(k)!r} vs now {current[k]!r}'
            for k in RESUME_KEYS
            if k in saved and saved.get(k) != current[k]
        ]
        if diffs:
            raise CheckpointMismatchError(
                f'cannot resume from {path}: settings differ: ' + '; '.join(diffs)
            )
        return state

    def _load_adapter(self, path: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        adapter = path / 'adapter_model.safetensors'
        if not adapter.is_file():
            raise CheckpointMismatchError(f'{path}: no adapter_model.safetensors to resume from')
        weights = load_file(str(adapter))
        result = set_peft_model_state_dict(self.peft_model, weights)
        unexpected = getattr(result, 'unexpected_keys', [])
        if unexpected:
            raise CheckpointMismatchError(f'{path}: adapter has unexpected keys {unexpected[:3]}')
        assert self.peft_model is not None
        for param in self.peft_model.parameters():
            if param.requires_grad:
                param.data = param.data.float()

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        """Optimizer, scheduler, step, history and RNG of a checkpoint (weights already in)."""
        if self.config.full:
            from torch.distributed.checkpoint.state_dict import (
                set_optimizer_state_dict,
                StateDictOptions,
            )

            set_optimizer_state_dict(
                self.core,
                self.optimizer,
                state['optimizer'],
                # the vision towers' last blocks never get a gradient (OpenVLA reads the
                # penultimate block), so AdamW holds no state for them
                options=StateDictOptions(full_state_dict=True, strict=False),
            )
        else:
            self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        self.step = int(state['step'])
        self.history = _History(list(state['history']['train']), list(state['history']['eval']))
        rng = state.get('rng', {})
        if rng:
            random.setstate(rng['python'])
            np.random.set_state(rng['numpy'])
            torch.set_rng_state(rng['torch'])
            if rng.get('cuda') and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng['cuda'])
        self.resumed_from = path
        if self.dist.is_main:
            saved_world = state.get('world_size', 1)
            logger.info(
                'resumed from %s at step %d (saved by %d process(es), now %d)',
                path,
                self.step,
                saved_world,
                self.dist.world_size,
            )

    def save_final(self) -> None:
        """The final adapter (LoRA) or checkpoint (full), statistics and `finetune.json`.

        Every rank calls it (a full run gathers its weights); only rank 0 writes.
        """
        model_state = self._full_states()[0] if self.config.full else None
        if not self.dist.is_main:
            self.dist.barrier()
            return
        self.out.mkdir(parents=True, exist_ok=True)
        if model_state is not None:
            save_full_checkpoint(
                model_state, self.base_config, self.model_dir, self.out, self._statistics()
            )
        else:
            assert self.peft_model is not None
            self.peft_model.save_pretrained(str(self.out))
        write_statistics_file(
            self.out / const.DATASET_STATISTICS_NAME,
            self.config.unnorm_key,
            self.entry,
            base=self.base_stats,
        )
        merged_dir = None
        if self.config.merge and not self.config.full:
            merged_dir = merge_adapter(self.config.model, self.out, self.out / MERGED_DIR)
        summary = {
            'settings': self.config.to_dict(),
            'mode': 'full' if self.config.full else 'lora',
            'world_size': self.dist.world_size,
            'base_model_dir': str(self.model_dir),
            'unnorm_key': self.config.unnorm_key,
            'step': self.step,
            'trainable_parameters': self.trainable,
            'total_parameters': self.total,
            'train_steps': len(self.train_steps),
            'held_out_steps': len(self.val_steps),
            'final_train': self.history.train[-1] if self.history.train else None,
            'initial_eval': next((e for e in self.history.eval if e['step'] == 0), None),
            'final_eval': self.history.eval[-1] if self.history.eval else None,
            'history': {'train': self.history.train, 'eval': self.history.eval},
            'merged': str(merged_dir) if merged_dir else None,
            'checkpoint': str(self.out) if self.config.full else None,
            'resumed_from': str(self.resumed_from) if self.resumed_from else None,
        }
        (self.out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + '\n')
        self.dist.barrier()


class _StateHolder:
    """What `save_checkpoint` reads from a model: its state dict and config."""

    def __init__(self, state: dict[str, torch.Tensor], config: Any) -> None:
        self._state = state
        self.config = config

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


def lr_factor(step: int, steps: int, warmup_steps: int, schedule: str = 'cosine') -> float:
    """The learning rate's share of its peak at `step`: a linear warm-up, then a cosine to 10 %
    at `steps` (`schedule` 'cosine') or the peak ('constant')."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == 'cosine':
        span = max(1, steps - warmup_steps)
        done = min(1.0, (step - warmup_steps) / span)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * done))
    return 1.0


def save_full_checkpoint(
    state: dict[str, torch.Tensor],
    config: Any,
    base_dir: str | Path,
    out_dir: str | Path,
    norm_stats: dict[str, Any],
) -> Path:
    """Write trained weights as an ordinary OpenVLA checkpoint directory (bf16 shards).

    The base checkpoint's preprocessor, generation config and tokenizer files are copied, so the
    image size and prompt handling are the base model's; `norm_stats` become the config's.
    """
    import copy

    from openvla_ros.model.tiny import save_checkpoint

    config = copy.deepcopy(config)
    config.norm_stats = norm_stats
    out = save_checkpoint(_StateHolder(state, config), out_dir)  # type: ignore[arg-type]
    base = Path(base_dir)
    for name in (const.PREPROCESSOR_CONFIG_NAME, 'generation_config.json', *const.TOKENIZER_FILES):
        source = base / name
        if source.is_file():
            shutil.copyfile(source, out / name)
    return out


def merge_adapter(model: str, adapter: str | Path, out_dir: str | Path) -> Path:
    """Merge an adapter into a float copy of the base and write a full HF-layout checkpoint.

    The base is reloaded unquantized on the CPU (merging into 4-bit weights would round the
    update away), as OpenVLA merges; `dataset_statistics.json` of the adapter becomes the
    checkpoint's norm_stats.

    Args:
        model: base checkpoint directory or hub id.
        adapter: the adapter directory (with dataset_statistics.json).
        out_dir: where to write the merged checkpoint.
    """
    from openvla_ros.model.loading import load_model
    from openvla_ros.model.tiny import save_checkpoint

    adapter = Path(adapter)
    loaded = load_model(model, adapter=adapter, merge_adapter=True, progress=False)
    stats = read_statistics_file(adapter / const.DATASET_STATISTICS_NAME)
    loaded.config.norm_stats = {**(loaded.config.norm_stats or {}), **stats}
    net = loaded.model
    net.config = loaded.config
    out = save_checkpoint(net, out_dir)
    for name in (const.PREPROCESSOR_CONFIG_NAME, 'generation_config.json', *const.TOKENIZER_FILES):
        source = loaded.model_dir / name
        if source.is_file():
            shutil.copyfile(source, out / name)
    return out


def _mean(parts: list[Metrics]) -> Metrics:
    if not parts:
        return Metrics(float('nan'), 0.0, 0.0, 0)
    tokens = sum(p.tokens for p in parts) or len(parts)
    weights = [(p.tokens or 1) / tokens for p in parts]
    return Metrics(
        loss=float(sum(p.loss for p in parts) / len(parts)),
        accuracy=float(sum(w * p.accuracy for w, p in zip(weights, parts))),
        l1=float(sum(w * p.l1 for w, p in zip(weights, parts))),
        tokens=sum(p.tokens for p in parts),
    )
