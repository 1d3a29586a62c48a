"""Issue 19 item 9: the pose of the last command again (an idle limiter re-sends its target every
period) reuses that command's joints instead of an IK solve, only when those joints are the pose's
own solution: a step slowed to the joint speed limits keeps approaching its target."""

from __future__ import annotations

import numpy as np

from openvla_ros.adapters import AdapterConfig, ArmAdapter, EndEffectorCommand
from openvla_ros.control.kinematics import get_kinematics

PERIOD = 0.05


def test_the_same_pose_again_resends_the_same_joints_without_ik():
    adapter = ArmAdapter(AdapterConfig(interface='xs_sdk', robot='wx250s'))
    kin = get_kinematics('wx250s')
    q0 = np.array([0.0, -0.3, 0.3, 0.0, 0.5, 0.0])
    pose = kin.fk(q0)
    first = adapter.command(EndEffectorCommand(pose, 1.0), q0, period=PERIOD, now=1.0)
    assert first.ok and first.ik is not None
    again = adapter.command(EndEffectorCommand(pose, 1.0), q0, period=PERIOD, now=1.05)
    assert again.ok and again.ik is None  # no solve
    np.testing.assert_array_equal(again.q, first.q)


def test_a_slowed_step_is_not_taken_for_its_targets_solution():
    adapter = ArmAdapter(AdapterConfig(interface='xs_sdk', robot='wx250s'))
    kin = get_kinematics('wx250s')
    q0 = np.array([0.0, -0.3, 0.3, 0.0, 0.5, 0.0])
    assert adapter.command(EndEffectorCommand(kin.fk(q0), 1.0), q0, period=PERIOD, now=1.0).ok
    moved = kin.fk(q0)
    moved[2, 3] += 0.01
    slowed = adapter.command(EndEffectorCommand(moved, 1.0), q0, period=PERIOD, now=1.001)
    assert slowed.reason == 'LIMIT_JOINT_VELOCITY'
    again = adapter.command(EndEffectorCommand(moved, 1.0), q0, period=PERIOD, now=1.051)
    assert again.ok and again.ik is not None  # solved again, not the slowed joints re-sent
    np.testing.assert_allclose(kin.fk(again.q), moved, atol=1e-4)
