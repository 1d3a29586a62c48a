"""launch_testing: `ros2 launch openvla_ros franka_tabletop.launch.py sim:=true
policy:=scripted` brings up the whole graph and its topics carry data. Runs on a ROS 2 machine
(`launch_test`, `colcon test`); skipped where ROS 2 launch is not installed (not on PyPI)."""

from __future__ import annotations

import pytest

pytest.importorskip('launch_ros', reason='launch_ros is not installed (not on PyPI)')
pytest.importorskip('launch', reason='ROS 2 launch is not installed (not on PyPI)')
pytest.importorskip('launch_testing', reason='launch_testing is not installed (not on PyPI)')

from launch_helpers import launch_description, TestExitCodes, topics_test  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    return launch_description('franka_tabletop')


TestTopicsAppear = topics_test('/fr3/joint_states')
__all__ = ['TestExitCodes', 'TestTopicsAppear', 'generate_test_description']
