"""The vision pretraining stage: its loss, its hit measure, the patch shares, and a short run on
the micro model that changes the ViTs and projector and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
import torch

from openvla_ros.finetune.small_model import make_small_model
from openvla_ros.finetune.vision_pretrain import (
    localization_hits,
    localization_loss,
    patch_shares,
    pretrain_vision,
    SUMMARY_NAME,
    VisionPretrainConfig,
)


def test_patch_shares_average_each_class_over_its_cell() -> None:
    labels = np.full((6, 8), -1, np.int16)
    labels[:, :4] = 0  # the left half: class 0
    labels[:3, 6:] = 1  # half of the top-right cell
    shares = patch_shares(labels, 2, 2)
    assert shares.shape == (2, 2, 2)
    np.testing.assert_allclose(shares[0], [[1, 0], [1, 0]])
    np.testing.assert_allclose(shares[1], [[0, 0.5], [0, 0]])


def test_the_loss_prefers_the_patch_the_object_covers_and_skips_unseen_classes() -> None:
    shares = torch.zeros(1, 2, 4)
    shares[0, 0, 2] = 1.0  # class 0 covers patch 2; class 1 is not in view
    right = torch.zeros(1, 4, 2)
    right[0, 2, 0] = 8.0
    wrong = torch.zeros(1, 4, 2)
    wrong[0, 1, 0] = 8.0
    uniform = torch.zeros(1, 4, 2)
    assert localization_loss(right, shares) < localization_loss(uniform, shares)
    assert localization_loss(uniform, shares) < localization_loss(wrong, shares)
    torch.testing.assert_close(localization_loss(uniform, shares), torch.log(torch.tensor(4.0)))
    scrambled = right.clone()
    scrambled[0, :, 1] = torch.randn(4)  # the unseen class's scores do not count
    torch.testing.assert_close(
        localization_loss(scrambled, shares), localization_loss(right, shares)
    )


def test_hits_count_the_best_patch_on_the_object_per_class() -> None:
    shares = torch.zeros(2, 2, 4)
    shares[0, 0, 1] = shares[1, 0, 3] = 0.5  # class 0 in both views
    shares[0, 1, 0] = 1.0  # class 1 only in the first
    logits = torch.zeros(2, 4, 2)
    logits[0, 1, 0] = logits[1, 2, 0] = 1.0  # class 0: right, then wrong
    logits[0, 0, 1] = 1.0  # class 1: right
    assert localization_hits(logits, shares) == [0.5, 1.0]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match='held_out_scenes'):
        VisionPretrainConfig(model='m', out='o', scenes=4, held_out_scenes=4)
    with pytest.raises(ValueError, match='steps'):
        VisionPretrainConfig(model='m', out='o', steps=0)


def test_a_missing_checkpoint_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='config.json'):
        pretrain_vision(VisionPretrainConfig(model=str(tmp_path), out=str(tmp_path / 'o')))


def test_a_short_run_trains_the_vision_stage_only_and_writes_a_checkpoint(tmp_path: Path) -> None:
    base = make_small_model(tmp_path / 'base', 'micro')
    out = tmp_path / 'pretrained'
    summary = pretrain_vision(
        VisionPretrainConfig(
            model=str(base), out=str(out), task='lift_block', first_seed=20000, scenes=4,
            views=2, held_out_scenes=1, steps=3, batch_size=4,
        ),
        progress=False,
    )  # fmt: skip
    assert summary['classes'] == ['red_block', 'green_block', 'blue_block', 'gripper']
    assert (summary['views'], summary['held_out_views']) == (6, 2)
    assert len(summary['held_out_hits_after']) == 4
    assert json.loads((out / SUMMARY_NAME).read_text()) == summary
    assert (out / 'small_model.json').read_text() == (base / 'small_model.json').read_text()
    assert not out.with_name('pretrained.tmp').exists()  # written whole, then moved

    def weights(path: Path) -> dict[str, torch.Tensor]:
        index = json.loads((path / 'model.safetensors.index.json').read_text())
        return {k: v for f in set(index['weight_map'].values())
                for k, v in load_file(str(path / f)).items()}  # fmt: skip

    before, after = weights(base), weights(out)
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    vision = {k for k in before if k.startswith(('vision_backbone.', 'projector.'))}
    assert changed and changed <= vision  # the Llama, embeddings and lm_head are untouched
    assert any(k.startswith('projector.') for k in changed)


def test_the_schedule_warms_up_then_falls_by_a_cosine_to_a_tenth() -> None:
    """The shape both trainings share (`lr_factor`): linear to the peak, cosine to 10 %."""
    from openvla_ros.finetune.trainer import lr_factor

    factors = [lr_factor(step, 100, 10) for step in range(120)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[55] == pytest.approx(0.55)
    assert factors[100] == pytest.approx(0.1) and factors[119] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # never rises again
    assert lr_factor(50, 100, 10, 'constant') == 1.0
