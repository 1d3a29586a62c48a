"""The pure adapter mapping: IK round trips, limits after IK, hold, gripper units, servo twist."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openvla_ros.adapters import (
    AdapterConfig,
    ArmAdapter,
    changed_meaningfully,
    EndEffectorCommand,
    finger_position,
    franka_gripper_command,
    franka_width,
    FrankaGripperConfig,
    FrankaGripperValues,
    gripper_action_command,
    gripper_command_position,
    GripperCommandValues,
    HOLD_LAST_COMMAND,
    HOLD_RESENT,
    interbotix_gripper_pwm,
    JointGroupCommandValues,
    JointLimitConfig,
    JointSingleCommandValues,
    JointTrajectoryValues,
    OK,
    PoseValues,
    REJECT_JOINT_LIMIT,
    REJECT_JOINT_VELOCITY,
    REJECT_NON_FINITE,
    servo_twist,
    TwistValues,
    WAIT_FOR_JOINT_STATES,
)
from openvla_ros.control.kinematics import get_kinematics

WX_Q = np.array([0.0, -0.5, 0.6, 0.0, 0.8, 0.0])
FR3_Q = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])


def shifted(pose: np.ndarray, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> np.ndarray:
    out = pose.copy()
    out[:3, 3] += (dx, dy, dz)
    return out


def test_xs_sdk_target_round_trips_through_ik_to_the_same_pose():
    kin = get_kinematics('wx250s')
    target = shifted(kin.fk(WX_Q), dx=0.01, dz=-0.01)
    adapter = ArmAdapter(AdapterConfig('xs_sdk', 'wx250s'))
    result = adapter.command(EndEffectorCommand(target, 1.0), WX_Q, period=0.2)
    assert result.ok and result.reason == OK
    assert isinstance(result.arm, JointGroupCommandValues) and result.arm.name == 'arm'
    assert len(result.arm.cmd) == 6
    np.testing.assert_allclose(kin.fk(np.array(result.arm.cmd)), target, atol=2e-3)
    assert result.gripper == JointSingleCommandValues('gripper', 250.0)


@pytest.mark.parametrize(('interface', 'robot', 'q'), [
    ('ros2_control', 'wx250s', WX_Q),
    ('franka_jtc', 'fr3', FR3_Q),
    ('franka_jtc', 'panda', FR3_Q),
])
def test_trajectory_interfaces_send_one_point_at_one_period_in_joint_order(interface, robot, q):
    kin = get_kinematics(robot)
    target = shifted(kin.fk(q), dy=0.01)
    result = ArmAdapter(AdapterConfig(interface, robot)).command(
        EndEffectorCommand(target, 0.0), q, period=0.2)
    assert result.ok
    assert isinstance(result.arm, JointTrajectoryValues)
    assert result.arm.joint_names == kin.joint_names
    assert result.arm.time_from_start == 0.2
    np.testing.assert_allclose(kin.fk(np.array(result.arm.positions)), target, atol=2e-3)


def test_ros2_control_gripper_goes_to_left_finger_position():
    kin = get_kinematics('wx250s')
    result = ArmAdapter(AdapterConfig('ros2_control', 'wx250s')).command(
        EndEffectorCommand(kin.fk(WX_Q), 1.0), WX_Q, period=0.2)
    assert result.gripper == JointTrajectoryValues(('left_finger',), (0.037,), 0.2)


def test_franka_impedance_sends_the_pose_itself_with_the_configured_frame():
    kin = get_kinematics('fr3')
    target = shifted(kin.fk(FR3_Q), dz=-0.02)
    result = ArmAdapter(AdapterConfig('franka_impedance', 'fr3', frame_id='fr3_link0')).command(
        EndEffectorCommand(target, 1.0, frame_id='other'), FR3_Q, period=0.2)
    assert result.ok and isinstance(result.arm, PoseValues)
    assert result.arm.frame_id == 'fr3_link0'
    np.testing.assert_allclose(result.arm.position, target[:3, 3])
    back = EndEffectorCommand.from_position_quaternion(result.arm.position, result.arm.orientation,
                                                       1.0)
    np.testing.assert_allclose(back.pose, target, atol=1e-9)
    assert result.gripper == FrankaGripperValues('move', 0.08, 0.1)


def test_a_target_needing_a_joint_beyond_its_limit_is_refused_with_nothing_to_send():
    kin = get_kinematics('wx250s')
    q_bad = WX_Q.copy()
    q_bad[4] = 2.3  # wrist_angle: upper limit 123 deg = 2.147 rad
    adapter = ArmAdapter(AdapterConfig('xs_sdk', 'wx250s'))
    result = adapter.command(EndEffectorCommand(kin.fk(q_bad), 1.0), WX_Q, period=0.2)
    assert not result.ok
    assert result.reason == 'IK_JOINT_LIMIT'
    assert 'wrist_angle' in result.message
    assert result.arm is None and result.gripper is None


def test_the_adapter_margin_refuses_a_solution_the_urdf_limits_allow():
    kin = get_kinematics('wx250s')
    q_edge = WX_Q.copy()
    q_edge[4] = 2.10  # 0.047 rad inside the upper limit
    adapter = ArmAdapter(AdapterConfig('xs_sdk', 'wx250s', limits=JointLimitConfig(0.1, 0.0)))
    result = adapter.command(EndEffectorCommand(kin.fk(q_edge), 1.0), q_edge, period=0.2)
    assert not result.ok and result.reason == REJECT_JOINT_LIMIT
    assert 'wrist_angle' in result.message


def test_a_jump_faster_than_the_joint_velocity_limit_is_refused():
    kin = get_kinematics('wx250s')
    q_far = WX_Q.copy()
    q_far[0] = 0.5  # waist 0.5 rad in 0.1 s = 5 rad/s > pi rad/s
    adapter = ArmAdapter(AdapterConfig('xs_sdk', 'wx250s'))
    result = adapter.command(EndEffectorCommand(kin.fk(q_far), 1.0), WX_Q, period=0.1)
    assert not result.ok and result.reason == REJECT_JOINT_VELOCITY
    assert 'waist' in result.message


def test_nothing_is_sent_before_a_joint_state_or_for_a_non_finite_target():
    kin = get_kinematics('wx250s')
    adapter = ArmAdapter(AdapterConfig('xs_sdk', 'wx250s'))
    assert adapter.command(EndEffectorCommand(kin.fk(WX_Q), 1.0), None,
                           period=0.2).reason == WAIT_FOR_JOINT_STATES
    bad = kin.fk(WX_Q)
    bad[0, 3] = math.nan
    result = adapter.command(EndEffectorCommand(bad, 1.0), WX_Q, period=0.2)
    assert not result.ok and result.reason == REJECT_NON_FINITE


def test_hold_resends_the_hold_pose_and_falls_back_to_the_last_command():
    kin = get_kinematics('wx250s')
    adapter = ArmAdapter(AdapterConfig('xs_sdk', 'wx250s'))
    held = adapter.command(EndEffectorCommand(kin.fk(WX_Q), 1.0, hold=True), WX_Q, period=0.2)
    assert held.ok and held.reason == HOLD_RESENT
    np.testing.assert_allclose(held.arm.cmd, WX_Q, atol=1e-3)
    unreachable = shifted(kin.fk(WX_Q), dx=1.0)
    fallback = adapter.command(EndEffectorCommand(unreachable, 1.0, hold=True), WX_Q, period=0.2)
    assert fallback.ok and fallback.reason == HOLD_LAST_COMMAND
    np.testing.assert_allclose(fallback.arm.cmd, held.arm.cmd)


def test_servo_twist_points_at_the_target_clipped_and_zero_on_hold():
    kin = get_kinematics('wx250s')
    adapter = ArmAdapter(AdapterConfig('servo', 'wx250s', frame_id='wx250s/base_link',
                                       max_linear_speed=0.05))
    result = adapter.command(EndEffectorCommand(shifted(kin.fk(WX_Q), dz=-0.02), 1.0), WX_Q,
                             period=0.2)
    assert result.ok and isinstance(result.arm, TwistValues) and result.gripper is None
    np.testing.assert_allclose(result.arm.linear, (0.0, 0.0, -0.05), atol=1e-9)
    assert result.arm.frame_id == 'wx250s/base_link'
    hold = adapter.command(EndEffectorCommand(kin.fk(WX_Q), 1.0, hold=True), WX_Q, period=0.2)
    assert hold.arm == TwistValues((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 'wx250s/base_link')


def test_servo_twist_turns_about_the_base_axes():
    target = np.eye(4)
    target[:3, :3] = [[math.cos(0.1), -math.sin(0.1), 0.0], [math.sin(0.1), math.cos(0.1), 0.0],
                      [0.0, 0.0, 1.0]]
    twist = servo_twist(target, np.eye(4), period=0.5, max_linear_speed=1.0,
                        max_angular_speed=1.0, frame_id='base')
    np.testing.assert_allclose(twist.angular, (0.0, 0.0, 0.2), atol=1e-12)
    with pytest.raises(ValueError, match='period'):
        servo_twist(target, np.eye(4), period=0.0, max_linear_speed=1.0, max_angular_speed=1.0,
                    frame_id='base')


def test_gripper_mappings_cover_each_driver_unit():
    assert interbotix_gripper_pwm(1.0) == 250.0
    assert interbotix_gripper_pwm(0.0) == -250.0
    assert interbotix_gripper_pwm(0.7, effort=300.0) == 300.0
    assert finger_position(0.0) == 0.015 and finger_position(1.0) == 0.037
    assert franka_width(0.5) == pytest.approx(0.04)
    assert franka_width(2.0) == pytest.approx(0.08)  # clipped
    assert gripper_command_position(0.08) == pytest.approx(0.04)
    assert gripper_action_command(1.0, FrankaGripperConfig()) == GripperCommandValues(0.04, 20.0)
    with pytest.raises(ValueError, match='finite'):
        franka_width(math.nan)
    with pytest.raises(ValueError, match='effort'):
        interbotix_gripper_pwm(1.0, effort=0.0)


def test_franka_gripper_grasps_when_closing_and_moves_when_opening():
    config = FrankaGripperConfig()
    grasp = franka_gripper_command(0.0, config)
    assert grasp.action == 'grasp' and grasp.width == 0.0 and grasp.force == 20.0
    assert grasp.epsilon_outer == pytest.approx(0.08)
    move = franka_gripper_command(1.0, config)
    assert move == FrankaGripperValues('move', 0.08, 0.1)
    assert changed_meaningfully(move, None, 0.005)
    assert not changed_meaningfully(move, franka_gripper_command(0.97, config), 0.005)
    assert changed_meaningfully(move, franka_gripper_command(0.8, config), 0.005)
    assert changed_meaningfully(grasp, move, 0.005)
    assert not changed_meaningfully(grasp, franka_gripper_command(0.1, config), 0.005)


def test_franka_adapter_sends_a_gripper_goal_only_when_it_changes():
    kin = get_kinematics('fr3')
    adapter = ArmAdapter(AdapterConfig('franka_jtc', 'fr3'))
    first = adapter.command(EndEffectorCommand(kin.fk(FR3_Q), 1.0), FR3_Q, period=0.2)
    assert first.gripper is not None
    adapter.gripper_goal_sent(first.gripper)
    again = adapter.command(EndEffectorCommand(kin.fk(FR3_Q), 0.99), FR3_Q, period=0.2)
    assert again.ok and again.gripper is None
    closing = adapter.command(EndEffectorCommand(kin.fk(FR3_Q), 0.0), FR3_Q, period=0.2)
    assert closing.gripper.action == 'grasp'


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'interface': 'moveit', 'robot': 'wx250s'}, 'unknown interface'),
    ({'interface': 'franka_impedance', 'robot': 'wx250s'}, 'Franka robot'),
    ({'interface': 'xs_sdk', 'robot': 'fr3'}, 'Interbotix'),
    ({'interface': 'franka_jtc', 'robot': 'fr3', 'franka_gripper_interface': 'x'}, 'unknown'),
])
def test_bad_adapter_configs_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdapterConfig(**kwargs)
