"""Micro-batches built ahead by DataLoader workers are the batches the training process builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from openvla_ros.finetune import FinetuneConfig
from openvla_ros.finetune.trainer import Trainer


def _config(model: Path, data: Path, out: Path, **overrides: object) -> FinetuneConfig:
    settings: dict = dict(
        model=str(model), data=str(data), out=str(out), steps=4, batch_size=2, lr=1e-3,
        lora_rank=4, save_every=0, augment='camera', seed=3,
    )  # fmt: skip
    settings.update(overrides)
    return FinetuneConfig(**settings)


def test_workers_build_the_same_batches_in_the_same_order(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    trainer = Trainer(_config(tiny_model_dir, recorded_dataset, tmp_path / 'a'), progress=False)
    inline = [trainer.micro_batch(i) for i in range(5)]
    trainer.config.workers = 2
    ahead = list(trainer._micro_batches(0, 5))
    assert len(ahead) == 5
    for a, b in zip(inline, ahead):
        assert torch.equal(a.input_ids, b.input_ids)
        assert torch.equal(a.labels, b.labels)
        assert torch.equal(a.pixel_values, b.pixel_values)  # augmentation seeded per sample
    # a window that starts later (a resumed run) continues the same stream
    later = list(trainer._micro_batches(3, 2))
    assert torch.equal(later[0].pixel_values, inline[3].pixel_values)


def test_training_with_workers_matches_training_without(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f'w{workers}'
        trainer = Trainer(
            _config(tiny_model_dir, recorded_dataset, out, workers=workers), progress=False
        )
        trainer.train()
        runs[workers] = [h['loss'] for h in trainer.history.train]
    assert len(runs[0]) == 4
    np.testing.assert_allclose(runs[2], runs[0], rtol=1e-6, atol=1e-6)


def test_auto_workers_use_the_cpu_only_on_cuda(tmp_path: Path) -> None:
    cpu = FinetuneConfig(model='m', data='d', out=str(tmp_path))
    assert cpu.workers == -1 and cpu.batch_workers == 0
    assert FinetuneConfig(model='m', data='d', out=str(tmp_path), workers=3).batch_workers == 3
    with pytest.raises(ValueError, match='workers'):
        FinetuneConfig(model='m', data='d', out=str(tmp_path), workers=-2)
