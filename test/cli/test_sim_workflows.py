"""The simulator workflows end to end, through the real CLI verbs (in-process, real rclpy):
demo outputs, a failing episode reported as failed, and expert bags -> fine-tune -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from openvla_ros.cli.main import main as cli

pytest.importorskip('interbotix_xs_msgs.msg', reason='interbotix_xs_msgs fixture not built')


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_demo_writes_a_moving_video_a_plot_with_data_and_a_readable_bag(tmp_path, capsys):
    out = tmp_path / 'demo'
    assert (
        cli(
            ['demo', 'widowx_bridge', '--task', 'lift_block', '--duration', '5', '--out', str(out)]
        )
        == 0
    )
    summary = last_json(capsys.readouterr().out)
    assert summary['policy'] == 'scripted' and summary['chunks'] > 10
    frames = [f for f in imageio.get_reader(summary['video'])]
    assert len(frames) > 20
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0, 'frames identical'
    assert Path(summary['plot']).stat().st_size > 20_000
    assert summary['tracking_error_m']['median'] < 0.02
    with AnyReader([Path(summary['bag'])]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    for topic in (
        '/camera/image_raw',
        '/instruction',
        '/openvla/action_chunk',
        '/openvla/safe_ee_target',
        '/wx250s/joint_states',
    ):
        assert counts.get(topic, 0) > 0, f'{topic} not recorded: {counts}'


def test_a_wrong_expert_is_reported_as_a_failed_episode(capsys):
    code = cli(
        [
            'evaluate',
            'widowx_bridge',
            '--task',
            'carrot_on_plate',
            '--episodes',
            '1',
            '--place-offset',
            '0',
            '0.15',
            '0',
            '--json',
        ]
    )
    assert code == 0
    summary = last_json(capsys.readouterr().out)
    assert summary['episodes'] == 1 and summary['successes'] == 0
    assert summary['success_rate'] == 0.0 and summary['per_episode'][0]['success'] is False
    # and why: the expert carried the carrot, and put it 15 cm beside the plate's centre
    episode = summary['per_episode'][0]
    assert episode['outcome'] == 'not_placed' and summary['failures'] == {'not_placed': 1}
    assert episode['max_rise_m'] > 0.02 and episode['closest_m'] < 0.03
    assert episode['grasps'] == 1 and episode['touched_others'] == []
    assert episode['place_error_m'] == pytest.approx(0.15, abs=0.04)


def test_expert_bags_feed_finetuning_and_the_adapter_runs_in_evaluate(
    tmp_path, capsys, tiny_model_dir
):
    bags = tmp_path / 'bags'
    assert (
        cli(
            [
                'evaluate',
                'widowx_bridge',
                '--task',
                'lift_block',
                '--episodes',
                '3',
                '--record',
                str(bags),
                '--json',
            ]
        )
        == 0
    )
    expert = last_json(capsys.readouterr().out)
    assert expert['successes'] >= 2, expert
    recorded = sorted(bags.iterdir())
    assert len(recorded) == 3

    data = tmp_path / 'data'
    assert (
        cli(
            [
                'record',
                '--bag',
                *map(str, recorded),
                '--out',
                str(data),
                '--profile',
                'widowx_bridge',
                '--json',
            ]
        )
        == 0
    )
    dataset = last_json(capsys.readouterr().out)
    assert dataset['num_episodes'] == 3 and dataset['num_steps'] > 20

    run = tmp_path / 'run'
    assert (
        cli(
            [
                'finetune',
                '--model',
                str(tiny_model_dir),
                '--data',
                str(data),
                '--out',
                str(run),
                '--unnorm-key',
                'sim_expert',
                '--steps',
                '8',
                '--batch-size',
                '2',
                '--lora-rank',
                '8',
                '--lr',
                '5e-3',
                '--val-fraction',
                '0.34',
                '--save-every',
                '4',
                '--json',
            ]
        )
        == 0
    )
    tuned = last_json(capsys.readouterr().out)
    before, after = tuned['initial_eval'], tuned['final_eval']
    print(
        f'held-out action-token accuracy: before {before["accuracy"]:.3f}, '
        f'after {after["accuracy"]:.3f} (tiny model, 8 steps)'
    )
    assert 0.0 <= before['accuracy'] <= 1.0 and 0.0 <= after['accuracy'] <= 1.0
    assert after['loss'] < before['loss'], (before, after)

    assert (
        cli(
            [
                'evaluate',
                'widowx_bridge',
                '--task',
                'lift_block',
                '--episodes',
                '1',
                '--policy',
                'openvla',
                '--model',
                str(tiny_model_dir),
                '--adapter',
                str(run),
                '--unnorm-key',
                'sim_expert',
                '--json',
            ]
        )
        == 0
    )
    result = last_json(capsys.readouterr().out)
    assert result['episodes'] == 1 and result['policy'] == 'openvla'


def test_the_franka_profile_lifts_the_block_through_the_impedance_adapter(capsys):
    """FR3 in simulation: equilibrium_pose targets and franka_gripper actions, end to end.

    In real time on 2 shared cores an episode occasionally fails (reruns: 8-10 of 10 succeed,
    docs/evaluation.md), so the path is shown working on 3 seeds, not required of a single one.
    """
    assert (
        cli(['evaluate', 'franka_tabletop', '--task', 'lift_block', '--episodes', '3', '--json'])
        == 0
    )
    summary = last_json(capsys.readouterr().out)
    assert summary['episodes'] == 3
    assert summary['successes'] >= 1, summary
    assert summary['passed'] > 0
