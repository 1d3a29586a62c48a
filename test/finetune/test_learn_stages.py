"""Stages of `openvla-ros learn` that need no episode: a training cut short on another machine."""

from __future__ import annotations

from pathlib import Path

from openvla_ros.finetune.learn import _State, LearnConfig, train


def test_a_training_cut_short_elsewhere_is_adopted_not_restarted(tmp_path: Path) -> None:
    """Only the exports of a GPU run stopped by its time limit came back (no step checkpoint, no
    finetune.json): they become the candidates; training here would start over from scratch."""
    out = tmp_path / 'run'
    export = out / 'train' / 'export_step_001651'
    export.mkdir(parents=True)
    (export / 'config.json').write_text('{}')
    config = LearnConfig(out=str(out), model_size='micro', steps=1800, save_every=900)
    state = _State(out, config)
    assert train(config, out, out / 'dataset', state) is None  # no dataset needed: no training
    assert state.data['train'] == {'done': True, 'cut_short_at': 1651}
    assert not (out / 'train' / 'checkpoints').exists()


def test_the_learn_command_defaults_are_learnconfigs() -> None:
    """The CLI states its defaults without importing torch (--help stays fast); each must be
    the one `LearnConfig` documents."""
    import argparse
    import dataclasses

    from openvla_ros.cli.learn import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = vars(parser.parse_args(['widowx_bridge', '--out', 'runs/x']))
    defaults = LearnConfig()
    compared = []
    for spec in dataclasses.fields(LearnConfig):
        if spec.name in args and spec.name not in ('profile', 'out', 'stop_after', 'noise'):
            assert args[spec.name] == getattr(defaults, spec.name), spec.name
            compared.append(spec.name)
    assert tuple(args['noise']) == defaults.noise
    assert {'bin_sigma', 'steps', 'lr', 'augment', 'batch_size'} <= set(compared)
    assert not args['drop_still_labels'] and defaults.keep_still  # kept unless asked


def test_keeping_still_labels_is_a_dataset_setting_refused_once_the_dataset_exists(
    tmp_path: Path,
) -> None:
    import json

    import pytest

    out = tmp_path / 'run'
    out.mkdir()
    _State(out, LearnConfig(out=str(out)))  # before the dataset: any value goes
    _State(out, LearnConfig(out=str(out), keep_still=False))
    (out / 'dataset').mkdir()
    with pytest.raises(ValueError, match='keep_still'):
        _State(out, LearnConfig(out=str(out), keep_still=True))
    assert json.loads((out / 'learn.json').read_text())['settings']['keep_still'] is False


def test_gpu_learn_carries_dropped_still_labels_to_the_learn_command(tmp_path: Path) -> None:
    from openvla_ros.finetune.learn_args import learn_arguments

    out = tmp_path / 'run'
    out.mkdir()
    _State(out, LearnConfig(out=str(out), keep_still=False, bin_sigma=2.0))
    args = learn_arguments(out, {'--steps': '10'})
    assert '--drop-still-labels' in args
    assert args[args.index('--bin-sigma') + 1] == '2.0'
    kept = tmp_path / 'kept'
    kept.mkdir()
    _State(kept, LearnConfig(out=str(kept)))
    assert '--drop-still-labels' not in learn_arguments(kept, {})
