"""The safety monitor's hold joints (``hold_q``): the IK seed and joint-jump reference of the next
target. They follow the hold pose: after a tracking-error hold (re-anchored on the measured pose)
they are unknown, so the node seeds with the measured joints, never with the joints of a target
the arm never reached. An unchanged hold pose reuses them without an IK solve."""

from __future__ import annotations

from functools import partial

import numpy as np
from test_limits_in_time import PERIOD, SAFETY

from openvla_ros.control.kinematics import get_kinematics
from openvla_ros.control.safety import SafetyMonitor

KIN = get_kinematics('wx250s')
Q0 = np.array([0.0, -0.3, 0.4, 0.0, 1.2, 0.0])


def fresh(t: float) -> SafetyMonitor:
    monitor = SafetyMonitor(SAFETY)
    monitor.on_image(t)
    monitor.on_joint_state(Q0, t, pose=KIN.fk(Q0), gripper=1.0)
    return monitor


def test_hold_q_follows_the_hold_pose_through_a_tracking_hold_and_seeds_a_passing_target():
    t = 100.0
    monitor = fresh(t)
    np.testing.assert_array_equal(monitor.hold_q, Q0)
    away = KIN.fk(Q0)
    away[1, 3] += 0.15
    outcomes = []
    for _ in range(8):  # the arm stays at Q0 (blocked) while the command runs ahead
        t += PERIOD
        monitor.on_image(t)
        monitor.on_joint_state(Q0, t, pose=KIN.fk(Q0), gripper=1.0)
        seed = monitor.hold_q if monitor.hold_q is not None else Q0
        decision = monitor.filter(away, 1.0, t, ik=partial(KIN.ik, seed=seed, dt=PERIOD))
        outcomes.append(decision.reasons)
        if 'HALT_FOR_TRACKING_ERROR' in decision.reasons:
            break
    assert 'HALT_FOR_TRACKING_ERROR' in outcomes[-1], outcomes
    assert monitor.hold_q is None  # re-anchored on the measured pose: seed with the measured q
    t += PERIOD
    monitor.on_image(t)
    monitor.on_joint_state(Q0, t, pose=KIN.fk(Q0), gripper=1.0)
    decision = monitor.filter(KIN.fk(Q0), 1.0, t, ik=partial(KIN.ik, seed=Q0, dt=PERIOD))
    assert decision.outcome == 'passed', decision.messages
    np.testing.assert_allclose(monitor.hold_q, decision.joint_positions)


def test_an_unchanged_hold_pose_reuses_its_joints_without_calling_ik():
    t = 100.0
    monitor = fresh(t)
    calls = []

    def ik(pose):
        calls.append(pose)
        return KIN.ik(pose, Q0, dt=PERIOD)

    t += PERIOD
    monitor.on_image(t)
    decision = monitor.filter(KIN.fk(Q0), 1.0, t, ik=ik)
    assert decision.outcome == 'passed' and calls == []
    np.testing.assert_array_equal(decision.joint_positions, Q0)
    moved = KIN.fk(Q0)
    moved[2, 3] += 0.005
    t += PERIOD
    monitor.on_image(t)
    assert monitor.filter(moved, 1.0, t, ik=ik).outcome == 'passed' and len(calls) == 1


def test_without_an_ik_callable_a_moved_hold_pose_has_no_joints():
    t = 100.0
    monitor = fresh(t)
    moved = KIN.fk(Q0)
    moved[2, 3] += 0.005
    t += PERIOD
    monitor.on_image(t)
    assert monitor.filter(moved, 1.0, t).outcome == 'passed'
    assert monitor.hold_q is None
