"""Driver topic names (ROBOTS.md): one resolution for the adapter and the simulator."""

from __future__ import annotations

import pytest

from openvla_ros.adapters.topics import (
    arm_trajectory_topic,
    gripper_trajectory_topic,
    xs_sdk_topics,
)


def test_interbotix_and_ros2_control_topics_live_under_the_robot_name():
    assert xs_sdk_topics('wx250s') == ('/wx250s/commands/joint_group',
                                       '/wx250s/commands/joint_single')
    assert arm_trajectory_topic('ros2_control', 'wx250s', 'arm1') == \
        '/arm1/arm_controller/joint_trajectory'
    assert gripper_trajectory_topic('arm1') == '/arm1/gripper_controller/joint_trajectory'


def test_franka_jtc_uses_the_arm_model_prefix_and_overrides_win():
    topic = arm_trajectory_topic('franka_jtc', 'fr3', 'fr3')
    assert topic == '/fr3_arm_controller/joint_trajectory'
    assert arm_trajectory_topic('franka_jtc', 'panda', 'x', '/custom') == '/custom'
    assert gripper_trajectory_topic('wx250s', '/g') == '/g'


def test_interfaces_without_a_trajectory_topic_are_refused():
    with pytest.raises(ValueError, match="interface 'servo' has no arm trajectory topic"):
        arm_trajectory_topic('servo', 'wx250s', 'wx250s')
