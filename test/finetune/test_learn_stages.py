"""Stages of `openvla-ros learn` that need no episode: a training cut short on another machine."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_gpu_learn_carries_the_expert_settings_to_the_learn_command(tmp_path: Path) -> None:
    """A GPU machine's `learn` must name the expert the demonstrations were recorded with, or
    the resumed run refuses the output (learn.json's settings differ)."""
    from openvla_ros.finetune.learn_args import learn_arguments

    out = tmp_path / 'run'
    out.mkdir()
    config = LearnConfig(
        out=str(out), expert_plan_from='target', expert_speed=(0.02, 0.1), expert_gain=0.3
    )
    _State(out, config)
    args = learn_arguments(out, {})
    assert args[args.index('--expert-plan-from') + 1] == 'target'
    i = args.index('--expert-speed')
    assert args[i + 1 : i + 3] == ['0.02', '0.1']
    assert args[args.index('--expert-gain') + 1] == '0.3'
    missing = tmp_path / 'missing'
    missing.mkdir()
    _State(missing, LearnConfig(out=str(missing), miss_probability=0.5))
    args = learn_arguments(missing, {})
    assert args[args.index('--miss-probability') + 1] == '0.5'


@pytest.mark.parametrize(
    'field,value',
    [
        ('expert_plan_from', 'camera'),
        ('expert_speed', (0.06, 0.1)),
        ('expert_gain', 0.0),
        ('miss_probability', 1.5),
        ('miss_probability', -0.1),
    ],
)
def test_learn_config_refuses_a_bad_expert(field, value) -> None:
    with pytest.raises(ValueError, match=field):
        LearnConfig(**{field: value})


def test_deliberate_misses_need_the_expert_on_the_measured_pose() -> None:
    with pytest.raises(ValueError, match="expert_plan_from 'measured'"):
        LearnConfig(miss_probability=0.5, expert_plan_from='target')
    LearnConfig(miss_probability=0.5)


def test_demonstrations_recorded_without_misses_do_not_resume_with_them(tmp_path: Path) -> None:
    """The misses shape the demonstrations: a run recorded before the option (no key) had
    none, and adding some to its set would mix two experts."""
    import json

    out = tmp_path / 'run'
    out.mkdir()
    settings = LearnConfig(out=str(out)).to_dict()
    del settings['miss_probability']
    state = {'settings': settings, 'demos': {'1000': {'success': True, 'bag': 'demo_seed1000'}}}
    (out / 'learn.json').write_text(json.dumps(state))
    with pytest.raises(ValueError, match='miss_probability'):
        _State(out, LearnConfig(out=str(out), miss_probability=0.3))
    _State(out, LearnConfig(out=str(out)))


def test_learn_config_refuses_a_negative_demo_time_factor() -> None:
    with pytest.raises(ValueError, match='demo_time_factor'):
        LearnConfig(demo_time_factor=-1.0)
    LearnConfig(demo_time_factor=0.0)  # 0: as fast as the graph keeps up


def test_a_run_recorded_before_the_expert_option_keeps_its_open_loop_expert(
    tmp_path: Path,
) -> None:
    """learn.json of an older run has demonstrations but no expert setting: they were
    recorded open loop at full speed, and resuming it with today's default would mix experts."""
    import json

    out = tmp_path / 'run'
    out.mkdir()
    settings = LearnConfig(out=str(out)).to_dict()
    del settings['expert_plan_from'], settings['expert_speed'], settings['expert_gain']
    state = {'settings': settings, 'demos': {'1000': {'success': True, 'bag': 'demo_seed1000'}}}
    (out / 'learn.json').write_text(json.dumps(state))
    with pytest.raises(ValueError, match='expert_plan_from, expert_speed'):
        _State(out, LearnConfig(out=str(out)))
    _State(out, LearnConfig(out=str(out), expert_plan_from='target', expert_speed=(0.05, 0.15)))


def test_vision_settings_are_refused_once_the_base_exists(tmp_path: Path) -> None:
    out = tmp_path / 'run'
    out.mkdir()
    _State(out, LearnConfig(out=str(out), vision_steps=400))  # no base yet: any value goes
    _State(out, LearnConfig(out=str(out), vision_steps=200, vision_views=3))
    (out / 'base').mkdir()
    for other in ({'vision_steps': 400}, {'vision_views': 5}, {'vision_steps': 0}):
        with pytest.raises(ValueError, match=next(iter(other))):
            _State(out, LearnConfig(out=str(out), **{'vision_steps': 200, 'vision_views': 3,
                                                     **other}))  # fmt: skip
    _State(out, LearnConfig(out=str(out), vision_steps=200, vision_views=3))


def test_a_base_built_before_vision_pretraining_is_resumed_with_none(tmp_path: Path) -> None:
    """learn.json of an older run has a base but no vision setting: its ViTs started random,
    and resuming it with a vision stage asked for would report a pretraining that never ran."""
    import json

    out = tmp_path / 'run'
    (out / 'base').mkdir(parents=True)
    settings = LearnConfig(out=str(out)).to_dict()
    del settings['vision_steps'], settings['vision_views']
    (out / 'learn.json').write_text(json.dumps({'settings': settings}))
    with pytest.raises(ValueError, match='vision_steps'):
        _State(out, LearnConfig(out=str(out), vision_steps=400))
    _State(out, LearnConfig(out=str(out)))  # the default: no vision stage


def test_gpu_learn_carries_the_vision_settings_to_the_learn_command(tmp_path: Path) -> None:
    from openvla_ros.finetune.learn_args import learn_arguments

    out = tmp_path / 'run'
    out.mkdir()
    _State(out, LearnConfig(out=str(out), vision_steps=150, vision_views=2))
    args = learn_arguments(out, {})
    assert args[args.index('--vision-steps') + 1] == '150'
    assert args[args.index('--vision-views') + 1] == '2'


@pytest.mark.parametrize('field,value', [('vision_steps', -1), ('vision_views', 0)])
def test_learn_config_refuses_bad_vision_settings(field, value) -> None:
    with pytest.raises(ValueError, match=field):
        LearnConfig(**{field: value})


def test_demonstrations_that_may_miss_get_half_the_task_time_again() -> None:
    from openvla_ros.finetune.learn import _demo_duration

    assert _demo_duration(LearnConfig()) == 0.0  # the task's own limit
    assert _demo_duration(LearnConfig(miss_probability=0.5)) == pytest.approx(1.5 * 60 / 5.0)
