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
