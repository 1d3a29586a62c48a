"""Dataset -> statistics -> LoRA training -> save -> load in predict with the new unnorm key."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from openvla_ros.data import Dataset, DatasetFormatError
from openvla_ros.finetune import (
    FinetuneConfig,
    FinetuneError,
    IGNORE_INDEX,
    latest_checkpoint,
    load_finetuned_policy,
    Trainer,
)
from openvla_ros.model import ModelNotFoundError


def _config(tiny: Path, data: Path, out: Path, **overrides: object) -> FinetuneConfig:
    values: dict[str, object] = {
        'model': str(tiny),
        'data': str(data),
        'out': str(out),
        'steps': 6,
        'batch_size': 2,
        'lr': 5e-3,
        'lora_rank': 8,
        'save_every': 2,
        'val_fraction': 0.5,
        'seed': 0,
    }
    values.update(overrides)
    return FinetuneConfig(**values)  # type: ignore[arg-type]


def test_samples_use_openvla_training_tokenization(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    trainer = Trainer(_config(tiny_model_dir, recorded_dataset, tmp_path / 'o'), progress=False)
    action = Dataset(recorded_dataset).actions(0)[0]
    ids, labels = trainer.builder.token_ids('Pick up the red block', action)
    prompt = trainer.processor.prompt_ids('Pick up the red block')
    assert ids[: len(prompt)] == prompt and prompt[-1] == 29871
    assert ids[-1] == 2  # EOS
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert labels[len(prompt) :] == ids[len(prompt) :]
    q01 = np.asarray(trainer.entry['action']['q01'])
    q99 = np.asarray(trainer.entry['action']['q99'])
    norm = 2 * (action - q01) / (q99 - q01 + 1e-8) - 1
    norm[6] = action[6]  # the gripper is not normalized
    bins = np.linspace(-1, 1, 256)
    expected = 32000 - np.digitize(np.clip(norm, -1, 1), bins)
    assert ids[len(prompt) : -1] == expected.tolist()
    assert all(t > 31743 for t in ids[len(prompt) : -1])  # all action tokens


def test_training_lowers_the_loss_and_predict_uses_the_new_key(
    tiny_model_dir: Path,
    overfit_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / 'run'
    config = _config(
        tiny_model_dir, overfit_dataset, out, steps=40, lr=1e-2, merge=True, val_fraction=0.0
    )
    trainer = Trainer(config, progress=False)
    assert 0 < trainer.trainable < 0.05 * trainer.total
    trainer.train()
    losses = [h['loss'] for h in trainer.history.train]
    assert np.mean(losses[-3:]) < 0.25 * losses[0]
    assert trainer.history.train[-1]['accuracy'] > 0.5
    summary = json.loads((out / 'finetune.json').read_text())
    assert summary['step'] == 40
    assert (out / 'adapter_model.safetensors').is_file()
    stats = json.loads((out / 'dataset_statistics.json').read_text())
    assert {'bridge_orig', 'my_robot'} <= set(stats)
    assert stats['my_robot'] == Dataset(overfit_dataset).statistics()

    dataset = Dataset(overfit_dataset)
    actions = dataset.all_actions()
    bin_width = (actions.max(0) - actions.min(0)) * 2 / 255 + 1e-6
    low, high = actions.min(0) - bin_width, actions.max(0) + bin_width
    image, text = dataset.frame(0, 0), dataset.instruction(0)
    policy = load_finetuned_policy(str(tiny_model_dir), adapter=out)
    assert 'my_robot' in policy.unnorm_keys
    action = policy.predict(image, text, 'my_robot').action
    assert np.all((action >= low) & (action <= high)), (action, low, high)

    # the merged checkpoint goes through `openvla-ros predict` unchanged
    from PIL import Image

    from openvla_ros.cli import predict

    Image.fromarray(image).save(tmp_path / 'frame.png')
    parser = argparse.ArgumentParser()
    predict.add_arguments(parser)
    argv = ['--model', str(out / 'merged'), '--image', str(tmp_path / 'frame.png')]
    argv += ['--instruction', text, '--unnorm-key', 'my_robot', '--json']
    assert predict.main(parser.parse_args(argv)) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    merged_action = np.asarray(result['action'])
    assert result['unnorm_key'] == 'my_robot'
    assert np.all((merged_action >= low) & (merged_action <= high)), merged_action


def test_resume_continues_from_the_last_checkpoint(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    whole = Trainer(_config(tiny_model_dir, recorded_dataset, tmp_path / 'whole'), progress=False)
    whole.train()
    reference = [h['loss'] for h in whole.history.train]

    out = tmp_path / 'cut'
    first = Trainer(_config(tiny_model_dir, recorded_dataset, out), progress=False)
    first.train(stop_after=3)  # "interrupted" after step 3; the last checkpoint is step 2
    assert latest_checkpoint(out) == out / 'checkpoints' / 'step_000002'
    with pytest.raises(FinetuneError, match='already holds a fine-tuning run'):
        Trainer(_config(tiny_model_dir, recorded_dataset, out), progress=False)

    resumed = Trainer(_config(tiny_model_dir, recorded_dataset, out, resume=True), progress=False)
    assert resumed.step == 2 and resumed.resumed_from == out / 'checkpoints' / 'step_000002'
    state = resumed.optimizer.state_dict()['state']
    assert state and all(int(s['step']) == 2 for s in state.values())
    resumed.train()
    assert resumed.step == 6
    losses = [h['loss'] for h in resumed.history.train]
    np.testing.assert_allclose(losses, reference, rtol=1e-4, atol=1e-4)
    assert json.loads((out / 'finetune.json').read_text())['resumed_from'].endswith('step_000002')

    with pytest.raises(FinetuneError, match='lora_rank'):
        Trainer(
            _config(tiny_model_dir, recorded_dataset, out, resume=True, lora_rank=4),
            progress=False,
        )


def test_augmentation_is_seeded_and_keeps_the_image_size(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    trainer = Trainer(
        _config(tiny_model_dir, recorded_dataset, tmp_path / 'o', augment=True), progress=False
    )
    a = trainer.builder.build(0, 0, sample_index=5)['pixel_values']
    b = trainer.builder.build(0, 0, sample_index=5)['pixel_values']
    c = trainer.builder.build(0, 0, sample_index=6)['pixel_values']
    plain = trainer.eval_builder.build(0, 0)['pixel_values']
    assert a.shape == plain.shape == (6, 224, 224)
    assert bool((a == b).all()) and not bool((a == c).all()) and not bool((a == plain).all())


def test_missing_model_dir_raises(recorded_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match='no checkpoint directory'):
        Trainer(_config(tmp_path / 'no_model', recorded_dataset, tmp_path / 'o'), progress=False)


def test_empty_or_missing_dataset_raises(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetFormatError, match='no dataset.json'):
        Trainer(_config(tiny_model_dir, tmp_path / 'empty', tmp_path / 'o'), progress=False)
    with pytest.raises(DatasetFormatError, match='no dataset directory'):
        Trainer(_config(tiny_model_dir, tmp_path / 'nowhere', tmp_path / 'o'), progress=False)


def test_bad_settings_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='batch_size'):
        FinetuneConfig(model='m', data='d', out='o', batch_size=0)
    with pytest.raises(ValueError, match='4bit'):
        FinetuneConfig(model='m', data='d', out='o', quantize='4bit', device='cpu')
    assert FinetuneConfig(model='m', data='d', out='o').lora_alpha == 16


def _run_finetune(argv: list[str]) -> int:
    from openvla_ros.cli.main import main as cli

    return cli(['finetune', *argv])


def test_finetune_cli_trains_and_reports_json(
    tiny_model_dir: Path,
    recorded_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ['--model', str(tiny_model_dir), '--data', str(recorded_dataset)]
    argv += ['--out', str(tmp_path / 'run'), '--steps', '2', '--batch-size', '2']
    argv += ['--lora-rank', '4', '--unnorm-key', 'my_robot', '--json']
    assert _run_finetune(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result['step'] == 2 and result['unnorm_key'] == 'my_robot'
    assert set(result['final_eval']) == {'step', 'loss', 'accuracy', 'l1'}
    assert 0.0 <= result['final_eval']['accuracy'] <= 1.0
    assert result['steps_per_second'] > 0


def test_finetune_cli_known_errors_are_one_line(
    recorded_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ['--model', str(tmp_path / 'none'), '--data', str(recorded_dataset)]
    assert _run_finetune([*argv, '--out', str(tmp_path / 'o')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('openvla-ros finetune: ') and err.count('\n') == 1 and 'none' in err
    assert _run_finetune([*argv[:2], '--data', str(tmp_path / 'x'), '--out', 'o']) == 1
    assert 'no dataset directory' in capsys.readouterr().err
