"""launch_testing: `ros2 launch openvla_ros franka_droid.launch.py sim:=true policy:=scripted
task:=lift_block` brings up the whole graph, the block rises after the instruction, and every
process exits cleanly on SIGINT. Runs on a ROS 2 machine (`launch_test`, `colcon test`);
skipped where ROS 2 launch is not installed (not on PyPI). The logic is
openvla_ros.bringup.launch_checks, unit-tested here in test_launch_checks.py."""

from __future__ import annotations

import pytest

pytest.importorskip('launch_ros', reason='launch_ros is not installed (not on PyPI)')
pytest.importorskip('launch.actions', reason='ROS 2 launch is not installed (not on PyPI)')
pytest.importorskip('launch_testing', reason='launch_testing is not installed (not on PyPI)')

from launch_helpers import launch_description, lift_test, TestExitCodes  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    return launch_description('franka_droid')


TestLiftBlock = lift_test('franka_droid')
__all__ = ['TestExitCodes', 'TestLiftBlock', 'generate_test_description']
