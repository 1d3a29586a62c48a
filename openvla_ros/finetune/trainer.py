"""The LoRA training loop: AMP, gradient accumulation, checkpoints, resume, held-out metrics.

Training goes through our model code (`OpenVLAForActionPrediction`): BOS, the projected patches,
then the rest of the tokens, as at inference; the language model's hidden states are turned into
logits only where a label exists (the 7 action tokens and EOS), which gives the same loss as
OpenVLA's full-sequence cross-entropy with IGNORE_INDEX without a (B, T, 32064) logits tensor.

Determinism: the sample at global position g is `permutation_{g // N}[g % N]` (a fresh seeded
permutation per epoch) and its augmentation is seeded by g, so a resumed run sees exactly the
batches an uninterrupted run would have seen.

Output directory::

    OUT/
      adapter_config.json, adapter_model.safetensors   the final LoRA adapter (peft)
      dataset_statistics.json                          base keys + the new unnorm key
      finetune.json                                    settings, metrics, loss history
      checkpoints/step_000200/                         adapter + trainer_state.pt (optimizer,
                                                       scheduler, step, history, RNG states)
      merged/                                          with --merge: a full HF-layout checkpoint
"""

from __future__ import annotations

from collections.abc import Callable
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
from openvla_ros.finetune.errors import CheckpointMismatchError, FinetuneError
from openvla_ros.finetune.lora import add_lora, trainable_parameters
from openvla_ros.model import constants as const
from openvla_ros.model.action_tokenizer import ActionStats, ActionTokenizer

__all__ = ['Metrics', 'Trainer', 'compute_loss', 'latest_checkpoint']

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = 'checkpoints'
STATE_NAME = 'trainer_state.pt'
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


def compute_loss(
    core: nn.Module, batch: Batch, tokenizer: ActionTokenizer
) -> tuple[torch.Tensor, Metrics]:
    """Teacher-forced loss and metrics of one batch.

    Args:
        core: the `OpenVLAForActionPrediction` (LoRA layers injected in place by peft).
        batch: a right-padded batch.
        tokenizer: the action tokenizer (which ids are action tokens, how they decode).

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
    loss = nn.functional.cross_entropy(logits, gold)
    with torch.no_grad():
        preds = logits.argmax(dim=-1)  # (M,)
        is_action = gold > tokenizer.action_token_begin_idx
        count = int(is_action.sum())
        accuracy = float((preds[is_action] == gold[is_action]).float().mean()) if count else 0.0
        pred_actions = tokenizer.decode(preds[is_action].cpu().numpy())
        gold_actions = tokenizer.decode(gold[is_action].cpu().numpy())
        l1 = float(np.abs(pred_actions - gold_actions).mean()) if count else 0.0
    return loss, Metrics(float(loss.detach()), accuracy, l1, count)


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


class Trainer:
    """LoRA fine-tuning of an OpenVLA checkpoint on a recorded dataset.

    Args:
        config: the run settings.
        progress: show a tqdm bar.

    Raises:
        DatasetFormatError, EmptyDatasetError: the dataset is unusable.
        OpenVLAError subclasses: the base model cannot be loaded.
        FinetuneError: the output directory holds a run and `resume` is off, or nothing to train.
        CheckpointMismatchError: resuming with incompatible settings.
    """

    def __init__(self, config: FinetuneConfig, *, progress: bool = True) -> None:
        self.config = config
        self.progress = progress
        self.out = Path(config.out)
        self.dataset = Dataset(config.data)
        self._check_out_dir()
        self.entry = self.dataset.statistics()
        self.stats = ActionStats.from_dict(self.entry['action'], key=config.unnorm_key)
        self.train_steps, self.val_steps = split_steps(
            self.dataset, config.val_fraction, config.seed
        )
        if not self.train_steps:
            raise FinetuneError('no training steps left after the held-out split')
        self._load_model()
        self.step = 0
        self.history = _History()
        self.optimizer = torch.optim.AdamW(
            [p for p in self.peft_model.parameters() if p.requires_grad],
            lr=config.lr,
            weight_decay=config.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        self.resumed_from: Path | None = None
        if config.resume:
            checkpoint = latest_checkpoint(self.out)
            if checkpoint is not None:
                self._load_checkpoint(checkpoint)

    # --- setup ------------------------------------------------------------------------------
    def _check_out_dir(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise FinetuneError(f'{self.out} exists and is not a directory')
        has_run = (self.out / SUMMARY_NAME).is_file() or latest_checkpoint(self.out) is not None
        if has_run and not self.config.resume:
            raise FinetuneError(
                f'{self.out} already holds a fine-tuning run: pass resume to continue it, '
                'or choose another output directory'
            )

    def _load_model(self) -> None:
        from openvla_ros.model.loading import load_model
        from openvla_ros.model.processor import OpenVLAProcessor

        config = self.config
        torch.manual_seed(config.seed)  # LoRA initialisation
        loaded = load_model(
            config.model,
            device=config.device,
            dtype=config.dtype,
            quantize=config.quantize,
            progress=self.progress,
        )
        self.base_stats = dict(loaded.config.norm_stats or {})
        self.model_dir = loaded.model_dir
        self.processor = OpenVLAProcessor(loaded.tokenizer, loaded.image_config)
        self.tokenizer = ActionTokenizer(
            loaded.config.action_vocab_size, loaded.config.n_action_bins
        )
        self.pad_token_id = int(loaded.config.pad_token_id)
        self.core = loaded.model
        assert config.lora_alpha is not None
        self.peft_model = add_lora(
            loaded.model,
            rank=config.lora_rank,
            alpha=config.lora_alpha,
            dropout=config.lora_dropout,
        )
        self.peft_model.to(config.device)
        self.trainable, self.total = trainable_parameters(self.peft_model)
        self.builder = SampleBuilder(
            self.dataset,
            self.processor,
            self.stats,
            self.tokenizer,
            augment=config.augment,
            seed=config.seed,
        )
        self.eval_builder = SampleBuilder(self.dataset, self.processor, self.stats, self.tokenizer)

    # --- data -------------------------------------------------------------------------------
    def _sample_position(self, position: int) -> tuple[int, int]:
        n = len(self.train_steps)
        epoch, offset = divmod(position, n)
        order = np.random.default_rng([self.config.seed, epoch]).permutation(n)
        return self.train_steps[int(order[offset])]

    def micro_batch(self, index: int) -> Batch:
        """The `index`-th training micro-batch of the run (a pure function of the index)."""
        size = self.config.batch_size
        samples = []
        for position in range(index * size, (index + 1) * size):
            episode, step = self._sample_position(position)
            samples.append(self.builder.build(episode, step, sample_index=position))
        return collate(samples, self.pad_token_id)

    # --- loop -------------------------------------------------------------------------------
    def _autocast(self) -> Any:
        name = self.config.autocast_dtype
        if name is None:
            return nullcontext()
        device_type = 'cuda' if self.config.device.startswith('cuda') else 'cpu'
        return torch.autocast(device_type, dtype=getattr(torch, name))

    def train(self, *, stop_after: int | None = None, on_step: Callable | None = None) -> None:
        """Run optimizer steps up to `config.steps` (or `stop_after` steps, to simulate an
        interruption), checkpointing every `save_every` steps and at the end.

        Args:
            stop_after: stop after this global step without the final save.
            on_step: called with (step, Metrics) after each optimizer step.
        """
        from tqdm.auto import tqdm

        config = self.config
        self.peft_model.train()
        scaler = torch.amp.GradScaler(enabled=config.autocast_dtype == 'float16')
        bar = tqdm(
            total=config.steps,
            initial=self.step,
            desc='Fine-tuning',
            unit='step',
            disable=not self.progress,
        )
        if self.step == 0 and self.val_steps and not self.history.eval:
            self._record_eval()  # held-out metrics of the base model, before any update
        start = time.perf_counter()
        first_step = self.step
        try:
            while self.step < config.steps:
                parts: list[Metrics] = []
                for micro in range(config.grad_accum):
                    batch = self.micro_batch(self.step * config.grad_accum + micro)
                    with self._autocast():
                        loss, metrics = compute_loss(self.core, batch, self.tokenizer)
                    scaler.scale(loss / config.grad_accum).backward()
                    parts.append(metrics)
                scaler.step(self.optimizer)
                scaler.update()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                merged = _mean(parts)
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
        finally:
            bar.close()
            elapsed = time.perf_counter() - start
            self.steps_per_second = (self.step - first_step) / elapsed if elapsed > 0 else 0.0
        evaluated = bool(self.history.eval) and self.history.eval[-1]['step'] == self.step
        if self.val_steps and not evaluated:
            self._record_eval()
        self.save_checkpoint()
        self.save_final()

    def _record_eval(self) -> None:
        metrics = self.evaluate()
        self.history.eval.append({'step': self.step, **metrics.to_dict()})
        logger.info(
            'step %d held-out: loss %.4f, accuracy %.3f, L1 %.4f',
            self.step,
            metrics.loss,
            metrics.accuracy,
            metrics.l1,
        )
        self.peft_model.train()

    @torch.no_grad()
    def evaluate(self, steps: list[tuple[int, int]] | None = None) -> Metrics:
        """Loss, action-token accuracy and L1 (normalized actions) on held-out steps.

        Args:
            steps: (episode, step) pairs; default the held-out split.

        Raises:
            FinetuneError: no steps to evaluate.
        """
        steps = self.val_steps if steps is None else steps
        if not steps:
            raise FinetuneError('no held-out steps (val_fraction is 0 or the dataset too small)')
        self.peft_model.eval()
        size = self.config.batch_size
        parts: list[Metrics] = []
        for begin in range(0, len(steps), size):
            if self.config.max_eval_batches and len(parts) >= self.config.max_eval_batches:
                break
            chunk = steps[begin : begin + size]
            batch = collate([self.eval_builder.build(e, s) for e, s in chunk], self.pad_token_id)
            with self._autocast():
                _, metrics = compute_loss(self.core, batch, self.tokenizer)
            parts.append(metrics)
        return _mean(parts)

    # --- saving -----------------------------------------------------------------------------
    def _statistics(self) -> dict[str, Any]:
        return {**self.base_stats, self.config.unnorm_key: self.entry}

    def save_checkpoint(self) -> Path:
        """Write `checkpoints/step_N/` (adapter, statistics, trainer state) and prune old ones."""
        root = self.out / CHECKPOINTS_DIR
        path = root / f'step_{self.step:06d}'
        path.mkdir(parents=True, exist_ok=True)
        self.peft_model.save_pretrained(str(path))
        write_statistics_file(
            path / const.DATASET_STATISTICS_NAME,
            self.config.unnorm_key,
            self.entry,
            base=self.base_stats,
        )
        state = {
            'step': self.step,
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'history': {'train': self.history.train, 'eval': self.history.eval},
            'config': self.config.to_dict(),
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
        return path

    def _load_checkpoint(self, path: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = torch.load(path / STATE_NAME, map_location='cpu', weights_only=False)
        saved = state.get('config', {})
        current = self.config.to_dict()
        diffs = [
            f'{k}: checkpoint {saved.get(k)!r} vs now {current[k]!r}'
            for k in RESUME_KEYS
            if k in saved and saved.get(k) != current[k]
        ]
        if diffs:
            raise CheckpointMismatchError(
                f'cannot resume from {path}: settings differ: ' + '; '.join(diffs)
            )
        weights = load_file(str(path / 'adapter_model.safetensors'))
        result = set_peft_model_state_dict(self.peft_model, weights)
        unexpected = getattr(result, 'unexpected_keys', [])
        if unexpected:
            raise CheckpointMismatchError(f'{path}: adapter has unexpected keys {unexpected[:3]}')
        for param in self.peft_model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
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
        logger.info('resumed from %s at step %d', path, self.step)

    def save_final(self) -> None:
        """The final adapter, statistics and `finetune.json` in `out`; merge if asked."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.peft_model.save_pretrained(str(self.out))
        write_statistics_file(
            self.out / const.DATASET_STATISTICS_NAME,
            self.config.unnorm_key,
            self.entry,
            base=self.base_stats,
        )
        merged_dir = None
        if self.config.merge:
            merged_dir = merge_adapter(self.config.model, self.out, self.out / MERGED_DIR)
        summary = {
            'settings': self.config.to_dict(),
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
            'resumed_from': str(self.resumed_from) if self.resumed_from else None,
        }
        (self.out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + '\n')


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
