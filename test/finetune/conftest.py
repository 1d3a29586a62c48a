"""Fixtures of the fine-tuning tests: a recorded synthetic dataset (bags written with rosbags)."""

from __future__ import annotations

import os
from pathlib import Path
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data'))


@pytest.fixture(scope='session')
def recorded_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes (two instructions, 12 steps each) recorded from MCAP bags."""
    from synthetic_bags import write_synthetic_bag

    from openvla_ros.data import episodes_from_bags, RecordConfig, write_dataset

    root = tmp_path_factory.mktemp('recorded')
    bags = [
        write_synthetic_bag(root / 'bag_0'),
        write_synthetic_bag(root / 'bag_1', instruction='open the drawer'),
    ]
    config = RecordConfig.from_profile('widowx_bridge')
    return write_dataset(root / 'dataset', episodes_from_bags(bags, config), config)


@pytest.fixture(scope='session')
def overfit_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two steps (gripper closed, moving) of one recorded episode: small enough to overfit."""
    from synthetic_bags import write_synthetic_bag

    from openvla_ros.data import Episode, episodes_from_bags, RecordConfig, write_dataset

    root = tmp_path_factory.mktemp('overfit')
    config = RecordConfig.from_profile('widowx_bridge')
    full = episodes_from_bags([write_synthetic_bag(root / 'bag')], config)[0]
    part = Episode(full.instruction, full.images[4:6], full.actions[4:6], full.timestamps_ns[4:6])
    return write_dataset(root / 'dataset', [part], config)
