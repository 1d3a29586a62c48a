"""Expert labels (`label_topic`): steps are the labels, each with the latest frame before it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic_bags import image_at, IMAGE_RATE, NS, write_synthetic_bag

from openvla_ros.data import episodes_from_bags, MissingTopicError, RecordConfig
from openvla_ros.data.bag_episodes import EXPERT_LABEL_TOPIC


def _labels() -> list[tuple[int, np.ndarray]]:
    labels = []
    for j in range(6):
        action = np.array([0.01 * j, -0.002, 0.0, 0.0, 0.01, 0.0, 1.0])
        labels.append((int(0.25 * NS) + j * int(0.2 * NS), action))
    labels[3][1][:6] = 0.0  # still, gripper closes: kept (the grasp)
    labels[3][1][6] = 0.0
    labels[4][1][:6] = 0.0  # still, gripper stays closed: dropped (a no-op)
    labels[4][1][6] = 0.0
    labels[5][1][6] = 0.0
    return labels


def test_steps_are_the_labels_with_the_latest_frame(tmp_path: Path) -> None:
    labels = _labels()
    bag = write_synthetic_bag(tmp_path / 'bag', labels=labels)
    config = RecordConfig.from_profile('widowx_bridge', label_topic=EXPERT_LABEL_TOPIC)
    (episode,) = episodes_from_bags([bag], config)
    kept = [0, 1, 2, 3, 5]
    assert len(episode) == len(kept) and episode.dropped_zero == 1
    for row, j in enumerate(kept):
        ns, action = labels[j]
        np.testing.assert_allclose(episode.actions[row], action)
        frame = int(np.floor(ns / NS * IMAGE_RATE + 1e-9))  # latest frame at or before the label
        np.testing.assert_array_equal(episode.images[row], image_at(frame))
        assert episode.timestamps_ns[row] == ns


def test_missing_label_topic_is_named(tmp_path: Path) -> None:
    bag = write_synthetic_bag(tmp_path / 'bag')
    config = RecordConfig.from_profile('widowx_bridge', label_topic=EXPERT_LABEL_TOPIC)
    with pytest.raises(MissingTopicError, match='expert label'):
        episodes_from_bags([bag], config)
