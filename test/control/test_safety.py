"""Safety monitor: invariants under arbitrary inputs, watchdogs, e-stop latch, IK faults."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from openvla_ros.control.config import SafetyConfig
from openvla_ros.control.kinematics import get_kinematics, IKResult
from openvla_ros.control.safety import SafetyMonitor, SafetyState

LOW = np.array([0.1, -0.20, -0.01])
HIGH = np.array([0.45, 0.25, 0.30])


def _monitor(config: SafetyConfig, pose: np.ndarray) -> SafetyMonitor:
    monitor = SafetyMonitor(config)
    monitor.on_image(0.0)
    monitor.on_joint_state(None, 0.0, pose=pose, gripper=1.0)
    return monitor


def _fresh(monitor: SafetyMonitor, now: float) -> None:
    monitor.on_image(now)
    monitor.on_joint_state(None, now)


def _target(position, rpy=(0.0, 0.0, 0.0)) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler('xyz', rpy).as_matrix()
    pose[:3, 3] = position
    return pose


def test_a_small_step_inside_the_box_passes_unchanged(bridge_safety_config, bridge_start_pose):
    monitor = _monitor(bridge_safety_config, bridge_start_pose)
    target = bridge_start_pose.copy()
    target[0, 3] += 0.005
    decision = monitor.filter(target, 0.95, 0.02)
    assert decision.outcome == 'passed'
    assert decision.state == SafetyState.OK
    assert decision.reasons == ()
    np.testing.assert_array_equal(decision.pose, target)
    assert monitor.passed == 1


def test_a_target_outside_the_box_is_clipped_and_named(bridge_safety_config, bridge_start_pose):
    start = bridge_start_pose.copy()
    start[2, 3] = 0.298
    monitor = _monitor(bridge_safety_config, start)
    target = start.copy()
    target[2, 3] = 0.305
    decision = monitor.filter(target, 1.0, 0.02)
    assert decision.state == SafetyState.LIMITED
    assert decision.reasons == ('CLIP_TO_WORKSPACE',)
    assert decision.pose[2, 3] == pytest.approx(0.30)
    assert 'outside the box' in decision.messages[0]


def test_a_long_step_is_shortened_to_the_per_period_limit(bridge_safety_config,
                                                          bridge_start_pose):
    monitor = _monitor(bridge_safety_config, bridge_start_pose)
    target = bridge_start_pose.copy()
    target[1, 3] += 0.1
    decision = monitor.filter(target, 1.0, 0.02)
    assert 'CLIP_STEP_TRANSLATION' in decision.reasons
    step = np.linalg.norm(decision.pose[:3, 3] - bridge_start_pose[:3, 3])
    assert step == pytest.approx(bridge_safety_config.max_step_translation)


def test_reject_mode_holds_instead_of_clipping(bridge_start_pose):
    config = SafetyConfig(workspace_low=tuple(LOW), workspace_high=tuple(HIGH), mode='reject')
    monitor = _monitor(config, bridge_start_pose)
    target = bridge_start_pose.copy()
    target[1, 3] += 0.1
    decision = monitor.filter(target, 1.0, 0.02)
    assert decision.hold
    assert decision.state == SafetyState.HOLD
    assert decision.reasons == ('REJECT_STEP_TRANSLATION',)
    np.testing.assert_array_equal(decision.pose, bridge_start_pose)


def test_yaw_beyond_the_bridge_bound_is_clipped(bridge_safety_config):
    start = _target([0.3, 0.0, 0.2], (0.0, 0.0, 1.55))
    monitor = _monitor(bridge_safety_config, start)
    decision = monitor.filter(_target([0.3, 0.0, 0.2], (0.0, 0.0, 1.6)), 1.0, 0.02)
    assert 'CLIP_ORIENTATION_LIMIT' in decision.reasons
    yaw = Rotation.from_matrix(decision.pose[:3, :3]).as_euler('xyz')[2]
    assert yaw == pytest.approx(1.57)


def test_nan_never_passes_and_holds_the_last_safe_pose(bridge_safety_config, bridge_start_pose):
    monitor = _monitor(bridge_safety_config, bridge_start_pose)
    target = bridge_start_pose.copy()
    target[0, 0] = math.nan
    decision = monitor.filter(target, 1.0, 0.02)
    assert decision.hold
    assert decision.reasons == ('REJECT_NON_FINITE',)
    np.testing.assert_array_equal(decision.pose, bridge_start_pose)
    assert monitor.filter(bridge_start_pose, math.inf, 0.04).reasons == ('REJECT_NON_FINITE',)
    assert monitor.rejected == 2


def test_no_reference_pose_means_hold_with_no_pose(bridge_safety_config, bridge_start_pose):
    monitor = SafetyMonitor(bridge_safety_config)
    decision = monitor.filter(bridge_start_pose, 1.0, 0.0)
    assert decision.hold
    assert decision.pose is None
    assert decision.reasons == ('HALT_FOR_NO_REFERENCE',)


def test_watchdogs_hold_on_stalls_and_recover_when_data_resumes(bridge_safety_config,
                                                                 bridge_start_pose):
    monitor = _monitor(bridge_safety_config, bridge_start_pose)
    assert monitor.filter(bridge_start_pose, 1.0, 0.3).outcome == 'passed'
    stalled = monitor.filter(bridge_start_pose, 1.0, 1.5)
    assert stalled.hold
    assert stalled.reasons == ('HALT_FOR_STALE_CAMERA', 'HALT_FOR_STALE_JOINT_STATES')
    assert '1.500 s old' in stalled.messages[0]
    _fresh(monitor, 1.5)
    assert monitor.filter(bridge_start_pose, 1.0, 1.52).outcome == 'passed'
    quiet = monitor.tick(2.2)
    assert quiet.hold
    assert 'HALT_FOR_STALE_COMMANDS' in quiet.reasons
    status = monitor.status(2.2)
    assert status.command_age == pytest.approx(0.68)
    assert status.passed == 2


def test_a_policy_fault_holds_every_period_until_the_policy_recovers(bridge_safety_config,
                                                                     bridge_start_pose):
    monitor = _monitor(bridge_safety_config, bridge_start_pose)
    assert monitor.filter(bridge_start_pose, 1.0, 0.3).outcome == 'passed'
    monitor.on_policy(False, 'policy server http://127.0.0.1:8000 unreachable')
    held = monitor.filter(bridge_start_pose, 1.0, 0.35)
    assert held.hold and held.outcome == 'rejected'
    assert held.reasons == ('HALT_FOR_POLICY_FAULT',)
    assert 'unreachable' in held.messages[0]
    assert monitor.tick(0.4).reasons == ('HALT_FOR_POLICY_FAULT',)
    monitor.on_policy(True)
    assert monitor.filter(bridge_start_pose, 1.0, 0.45).outcome == 'passed'


def test_ages_are_nan_before_any_data(bridge_safety_config):
    status = SafetyMonitor(bridge_safety_config).status(1.0)
    assert math.isnan(status.image_age)
    assert math.isnan(status.joint_state_age)
    assert math.isnan(status.command_age)


def test_estop_during_motion_latches_until_an_explicit_reset(bridge_safety_config,
                                                             bridge_start_pose):
    monitor = _monitor(bridge_safety_config, bridge_start_pose)
    target = bridge_start_pose.copy()
    target[0, 3] += 0.005
    moving = monitor.filter(target, 1.0, 0.02)
    monitor.on_estop(True, 0.03)
    target[0, 3] += 0.005
    held = monitor.filter(target, 1.0, 0.04)
    assert held.hold
    assert held.state == SafetyState.ESTOP
    np.testing.assert_array_equal(held.pose, moving.pose)
    ok, message = monitor.reset(0.05)
    assert not ok
    assert 'still engaged' in message
    monitor.on_estop(False, 0.06)
    assert monitor.filter(target, 1.0, 0.07).state == SafetyState.ESTOP
    ok, message = monitor.reset(0.08)
    assert ok
    assert 'ESTOP' in message
    assert monitor.filter(target, 1.0, 0.09).outcome == 'passed'


def test_a_throwing_ik_callable_latches_fault_and_never_passes(bridge_safety_config,
                                                               bridge_start_pose):
    monitor = _monitor(bridge_safety_config, bridge_start_pose)

    def broken(pose):
        raise RuntimeError('solver crashed')

    decision = monitor.filter(bridge_start_pose, 1.0, 0.02, ik=broken)
    assert decision.hold
    assert decision.state == SafetyState.FAULT
    assert decision.reasons == ('FAULT_IK_EXCEPTION',)
    assert 'solver crashed' in decision.messages[0]
    assert monitor.filter(bridge_start_pose, 1.0, 0.04).state == SafetyState.FAULT
    assert monitor.reset(0.05)[0]
    assert monitor.filter(bridge_start_pose, 1.0, 0.06).outcome == 'passed'


def test_an_ik_failure_holds_and_a_joint_limit_is_named(bridge_safety_config, bridge_start_pose):
    monitor = _monitor(bridge_safety_config, bridge_start_pose)
    failed = monitor.filter(bridge_start_pose, 1.0, 0.02,
                            ik=lambda p: IKResult(False, None, 'IK_JOINT_LIMIT', 'elbow'))
    assert failed.state == SafetyState.HOLD
    assert failed.reasons == ('HALT_FOR_JOINT_LIMIT',)
    garbage = monitor.filter(bridge_start_pose, 1.0, 0.04, ik=lambda p: 'yes')
    assert garbage.state == SafetyState.FAULT
    assert garbage.reasons == ('FAULT_IK_INVALID_RESULT',)


def test_repeated_ik_failures_escalate_to_fault_when_configured(bridge_start_pose):
    config = SafetyConfig(workspace_low=tuple(LOW), workspace_high=tuple(HIGH),
                          ik_failures_before_fault=3)
    monitor = _monitor(config, bridge_start_pose)
    fail = lambda p: IKResult(False, None, 'IK_NO_CONVERGENCE', 'far')  # noqa: E731
    states = [monitor.filter(bridge_start_pose, 1.0, 0.02 * k, ik=fail).state for k in range(3)]
    assert states == [SafetyState.HOLD, SafetyState.HOLD, SafetyState.FAULT]


def test_real_widowx_ik_passes_its_joint_solution_through(bridge_safety_config):
    kin = get_kinematics('wx250s')
    q = np.array([0.0, 0.3, 0.2, 0.0, 0.5, 0.0])
    start = kin.fk(q)
    monitor = _monitor(bridge_safety_config, start)
    target = start.copy()
    target[2, 3] -= 0.004
    decision = monitor.filter(target, 1.0, 0.02, ik=lambda p: kin.ik(p, q, dt=0.02))
    assert decision.outcome == 'passed'
    np.testing.assert_allclose(kin.fk(decision.joint_positions), target, atol=1e-3)


finite = st.floats(-1.0, 1.0, allow_nan=False)
weird = st.one_of(finite, st.just(math.nan), st.just(math.inf), st.just(-math.inf),
                  st.floats(-1e9, 1e9))
command = st.tuples(
    st.sampled_from(['target', 'target', 'target', 'estop', 'release', 'reset', 'tick', 'stall',
                     'ik_raise']),
    st.lists(weird, min_size=3, max_size=3),  # position offset
    st.lists(st.floats(-4.0, 4.0), min_size=3, max_size=3),  # rpy
    weird,  # gripper
)


@given(st.lists(command, min_size=1, max_size=40), st.sampled_from(['clip', 'reject']))
def test_property_outputs_stay_in_the_box_within_step_limits_and_hold_after_estop(commands, mode):
    config = SafetyConfig(workspace_low=tuple(LOW), workspace_high=tuple(HIGH), mode=mode,
                          orientation_low=(-math.pi, -math.pi, -1.57),
                          orientation_high=(math.pi, math.pi, 1.57))
    start = _target([0.3, -0.09, 0.26], (0.0, 0.5, 0.0))
    monitor = _monitor(config, start)
    previous_pose = start
    previous_gripper = 1.0
    latched = False
    now = 0.0
    for kind, offset, rpy, gripper in commands:
        now += 0.02
        if kind != 'stall':
            _fresh(monitor, now)
        if kind == 'estop':
            monitor.on_estop(True, now)
            latched = True
            continue
        if kind == 'release':
            monitor.on_estop(False, now)
            continue
        if kind == 'reset':
            ok, _ = monitor.reset(now)
            if ok:
                latched = False
            continue
        if kind == 'tick':
            decision = monitor.tick(now)
        else:
            pose = np.eye(4)
            with np.errstate(all='ignore'):
                pose[:3, 3] = previous_pose[:3, 3] + 0.05 * np.asarray(offset)
            try:
                pose[:3, :3] = Rotation.from_euler('xyz', rpy).as_matrix()
            except ValueError:
                pose[:3, :3] = math.nan
            ik = None
            if kind == 'ik_raise':
                def ik(p):
                    raise ValueError('boom')
            decision = monitor.filter(pose, gripper, now, ik=ik)
            if decision.state == SafetyState.FAULT:
                latched = True
        assert decision.pose is not None
        assert np.all(np.isfinite(decision.pose))
        assert math.isfinite(decision.gripper)
        assert np.all(decision.pose[:3, 3] >= LOW - 1e-9)
        assert np.all(decision.pose[:3, 3] <= HIGH + 1e-9)
        step = np.linalg.norm(decision.pose[:3, 3] - previous_pose[:3, 3])
        assert step <= config.max_step_translation + 1e-9
        turn = Rotation.from_matrix(decision.pose[:3, :3] @ previous_pose[:3, :3].T).magnitude()
        assert turn <= config.max_step_rotation + 1e-9
        assert abs(decision.gripper - previous_gripper) <= config.max_step_gripper + 1e-9
        if latched:
            assert decision.hold
            np.testing.assert_array_equal(decision.pose, previous_pose)
            assert decision.state in (SafetyState.ESTOP, SafetyState.FAULT)
        if decision.state == SafetyState.OK:
            assert decision.reasons == ()
        else:
            assert decision.reasons != ()
        if not decision.hold:
            assert decision.outcome in ('passed', 'clipped')
        previous_pose = decision.pose
        previous_gripper = decision.gripper
