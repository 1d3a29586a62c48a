"""Bags -> episodes -> on-disk dataset -> statistics, on synthetic bags written with rosbags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic_bags import expected_actions, image_at, INSTRUCTION, write_synthetic_bag

from openvla_ros.data import (
    compute_action_statistics,
    Dataset,
    DatasetFormatError,
    EmptyDatasetError,
    episodes_from_bags,
    MissingTopicError,
    NoImagesError,
    RecordConfig,
    write_dataset,
)


def _config(**overrides: object) -> RecordConfig:
    return RecordConfig.from_profile('widowx_bridge', **overrides)


def test_profile_sets_rate_robot_and_action_semantics() -> None:
    config = _config()
    assert config.rate_hz == 5.0
    assert config.robot == 'wx250s'
    assert config.action_space == 'bridge_orig'
    assert config.gripper_convention == 0


def test_mcap_bag_gives_hand_computed_actions_and_drops_zero_steps(tmp_path: Path) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag')
    episodes = episodes_from_bags([bag], _config())
    expected, dropped = expected_actions()
    assert dropped == 3
    assert len(episodes) == 1
    episode = episodes[0]
    assert episode.instruction == INSTRUCTION
    assert len(episode) == 15 - 3 == expected.shape[0]
    assert episode.dropped_zero == 3
    np.testing.assert_allclose(episode.actions, expected, atol=1e-9)
    assert not np.any(np.all(np.abs(episode.actions[:, :6]) < 1e-9, axis=1))
    # the first step observes the frame at t = 0, the second (t = 0.2 s) the 3rd frame
    assert np.array_equal(episode.images[0], image_at(0))
    assert np.array_equal(episode.images[1], image_at(2))


def test_sqlite3_bag_with_bgr_images_reads_the_same(tmp_path: Path) -> None:
    mcap = episodes_from_bags([write_synthetic_bag(tmp_path / 'a')], _config())[0]
    sqlite = episodes_from_bags(
        [write_synthetic_bag(tmp_path / 'b', storage='sqlite3', encoding='bgr8')], _config()
    )[0]
    np.testing.assert_array_equal(mcap.actions, sqlite.actions)
    for a, b in zip(mcap.images, sqlite.images):
        np.testing.assert_array_equal(a, b)


def test_keep_zero_actions_keeps_every_step(tmp_path: Path) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag')
    episode = episodes_from_bags([bag], _config(drop_zero_actions=False))[0]
    assert len(episode) == 15


def test_fixed_instruction_replaces_a_missing_instruction_topic(tmp_path: Path) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag', instruction=None)
    episode = episodes_from_bags([bag], _config(instruction='wipe the table'))[0]
    assert episode.instruction == 'wipe the table'
    assert len(episode) == 12


def test_fallback_commanded_topic_is_ee_target(tmp_path: Path) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag', target_topic='/openvla/ee_target')
    expected, _ = expected_actions()
    actions = episodes_from_bags([bag], _config())[0].actions
    np.testing.assert_allclose(actions, expected, atol=1e-9)


def test_measured_joint_states_go_through_forward_kinematics(tmp_path: Path) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag', joint_states=True)
    config = _config(action_source='measured', drop_zero_actions=False)
    episode = episodes_from_bags([bag], config)[0]
    # the synthetic joints never move: every delta is zero, the gripper comes from the targets
    assert len(episode) == 15
    np.testing.assert_allclose(episode.actions[:, :6], 0.0, atol=1e-12)
    assert episode.actions[0, 6] == 1.0 and episode.actions[-1, 6] == 0.0
    with pytest.raises(EmptyDatasetError, match='no steps survived'):
        episodes_from_bags([bag], _config(action_source='measured'))


def test_dataset_round_trip_keeps_counts_actions_and_summary(tmp_path: Path) -> None:
    bags = [
        write_synthetic_bag(tmp_path / 'a'),
        write_synthetic_bag(tmp_path / 'b', storage='sqlite3', instruction='open the drawer'),
    ]
    config = _config()
    episodes = episodes_from_bags(bags, config)
    out = write_dataset(tmp_path / 'ds', episodes, config, profile='widowx_bridge')
    dataset = Dataset(out)
    summary = json.loads((out / 'dataset.json').read_text())
    assert summary['num_episodes'] == len(dataset) == 2
    assert summary['num_steps'] == dataset.num_steps == 24
    assert summary['num_dropped_zero_actions'] == 6
    assert summary['instructions'] == {INSTRUCTION: 12, 'open the drawer': 12}
    assert summary['rate_hz'] == 5.0 and summary['profile'] == 'widowx_bridge'
    expected, _ = expected_actions()
    np.testing.assert_allclose(dataset.actions(1), expected, atol=1e-9)
    assert dataset.instruction(1) == 'open the drawer'
    frame = dataset.frame(0, 1)
    assert frame.shape == (24, 32, 3) and frame.dtype == np.uint8
    assert np.abs(frame.astype(int) - image_at(2)).mean() < 12  # JPEG, quality 95
    with pytest.raises(DatasetFormatError, match='already holds a dataset'):
        write_dataset(out, episodes, config)


def test_statistics_match_numpy(tmp_path: Path) -> None:
    config = _config()
    episodes = episodes_from_bags([write_synthetic_bag(tmp_path / 'a')], config)
    dataset = Dataset(write_dataset(tmp_path / 'ds', episodes, config))
    stats = json.loads((dataset.root / 'statistics.json').read_text())
    actions = episodes[0].actions
    action = stats['action']
    np.testing.assert_allclose(action['mean'], actions.mean(0))
    np.testing.assert_allclose(action['std'], actions.std(0))
    np.testing.assert_allclose(action['min'], actions.min(0))
    np.testing.assert_allclose(action['max'], actions.max(0))
    np.testing.assert_allclose(action['q01'], np.quantile(actions, 0.01, axis=0))
    np.testing.assert_allclose(action['q99'], np.quantile(actions, 0.99, axis=0))
    assert action['mask'] == [True] * 6 + [False]
    assert stats['num_transitions'] == 12 and stats['num_trajectories'] == 1
    assert set(stats['proprio']) == {'mean', 'std', 'max', 'min', 'q01', 'q99'}
    assert dataset.statistics() == stats


def test_bag_with_an_empty_image_topic_raises(tmp_path: Path) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag', image_messages=False)
    with pytest.raises(NoImagesError, match='has no messages'):
        episodes_from_bags([bag], _config())


def test_bag_without_an_image_topic_raises_and_lists_topics(tmp_path: Path) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag', images=False)
    with pytest.raises(
        MissingTopicError, match=r"no image topic '/camera/image_raw'.*instruction"
    ):
        episodes_from_bags([bag], _config())


def test_unknown_topic_raises(tmp_path: Path) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag')
    with pytest.raises(MissingTopicError, match="no commanded end-effector target topic '/nope'"):
        episodes_from_bags([bag], _config(commanded_topic='/nope'))
    with pytest.raises(MissingTopicError, match="no image topic '/wrist/image'"):
        episodes_from_bags([bag], _config(image_topic='/wrist/image'))


def test_empty_dataset_raises(tmp_path: Path) -> None:
    with pytest.raises(EmptyDatasetError, match='no bags given'):
        episodes_from_bags([], _config())
    with pytest.raises(EmptyDatasetError, match='no episodes'):
        write_dataset(tmp_path / 'ds', [], _config())
    with pytest.raises(DatasetFormatError, match='no dataset.json'):
        Dataset(tmp_path)
    with pytest.raises(ValueError, match='non-empty'):
        compute_action_statistics(np.zeros((0, 7)))


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match='action_source'):
        RecordConfig(action_source='guessed')
    with pytest.raises(ValueError, match='rate_hz'):
        RecordConfig(rate_hz=0.0)


def _run_record(argv: list[str]) -> int:
    from openvla_ros.cli.main import main as cli

    return cli(['record', *argv])


def test_record_cli_writes_a_dataset_and_prints_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag')
    code = _run_record(['--bag', str(bag), '--out', str(tmp_path / 'ds'), '--json'])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result['num_episodes'] == 1 and result['num_steps'] == 12


def test_record_cli_known_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag')
    code = _run_record(['--bag', str(bag), '--out', str(tmp_path / 'ds'), '--image-topic', '/x'])
    err = capsys.readouterr().err
    assert code == 1
    last = err.strip().splitlines()[-1]  # (a tqdm bar may precede it)
    assert last.startswith('openvla-ros record: ') and "'/x'" in last and 'Traceback' not in err
    assert _run_record(['--bag', str(tmp_path / 'none'), '--out', str(tmp_path / 'o')]) == 1
    assert _run_record(['--bag', str(bag), '--out', str(tmp_path / 'o'), '--profile', 'x']) == 1
