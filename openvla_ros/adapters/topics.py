"""The drivers' topic names, resolved once for the adapter (which publishes to them) and the
simulator (which serves them), so the two can never disagree."""

from __future__ import annotations

__all__ = ['arm_trajectory_topic', 'gripper_trajectory_topic', 'xs_sdk_topics']


def xs_sdk_topics(robot_name: str) -> tuple[str, str]:
    """Interbotix ``xs_sdk``: (joint_group, joint_single) command topics."""
    return (f'/{robot_name}/commands/joint_group', f'/{robot_name}/commands/joint_single')


def arm_trajectory_topic(interface: str, robot: str, robot_name: str, override: str = '') -> str:
    """The arm JointTrajectoryController topic; ``override`` wins when set.

    Raises:
        ValueError: an interface without an arm trajectory topic.
    """
    if override:
        return override
    if interface == 'ros2_control':
        return f'/{robot_name}/arm_controller/joint_trajectory'  # interbotix_xsarm_ros_control
    if interface == 'franka_jtc':
        return f'/{robot}_arm_controller/joint_trajectory'  # franka_ros2 MoveIt config
    raise ValueError(f'interface {interface!r} has no arm trajectory topic')


def gripper_trajectory_topic(robot_name: str, override: str = '') -> str:
    """The ros2_control gripper controller's trajectory topic; ``override`` wins when set."""
    return override or f'/{robot_name}/gripper_controller/joint_trajectory'
