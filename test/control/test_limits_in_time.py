"""Issue 19 in the control core, on the real profile bounds: no windup (the limiter's goal never
leaves the safe set), limits per unit of real time (bursts, irregular ``now``), anchors that keep
the world as it is (an arm outside the box, the measured gripper), the tracking-error bound and the
policy watchdog. Issue 22: OpenVLA's DROID gripper (1 = open) reaches the adapter the right way
round.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from openvla_ros.adapters import AdapterConfig, ArmAdapter, EndEffectorCommand
from openvla_ros.adapters.gripper import franka_gripper_command, FrankaGripperConfig
from openvla_ros.bringup.profiles import load_profile
from openvla_ros.control.actions import get_action_space, GripperConvention
from openvla_ros.control.config import BOUNDS_KEYS, LimiterConfig, PoseBounds, SafetyConfig
from openvla_ros.control.kinematics import get_kinematics
from openvla_ros.control.rate_limiter import ActionChunkData, ActionRateLimiter
from openvla_ros.control.safety import SafetyMonitor, SafetyState

TOL = 1e-9


def profile_configs(name: str) -> tuple[LimiterConfig, SafetyConfig]:
    """The limiter and monitor configs a node builds from the profile (shared bounds in /**)."""
    prof = load_profile(name)
    rate = float(prof.get('control_rate'))
    limiter = LimiterConfig.from_dict(
        {**prof.section('action_limiter', 'limiter'), 'control_rate': rate}
    )
    safety = SafetyConfig.from_dict(
        {
            **{k: prof.common[k] for k in BOUNDS_KEYS},
            **prof.section('safety_monitor', 'safety'),
            'control_rate': rate,
        }
    )
    return limiter, safety


LIMITER, SAFETY = profile_configs('widowx_bridge')
BOUNDS = SAFETY.bounds
PERIOD = SAFETY.period
NOMINAL = Rotation.from_euler('xyz', SAFETY.orientation_nominal_rpy)


def pose_at(position, rpy=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A pose at ``position`` with relative Euler angles ``rpy`` from the profile's nominal."""
    pose = np.eye(4)
    pose[:3, :3] = (NOMINAL * Rotation.from_euler('xyz', rpy)).as_matrix()
    pose[:3, 3] = position
    return pose


START = pose_at([0.3, 0.0, 0.15])


def limiter_at(pose=START, gripper=1.0) -> ActionRateLimiter:
    limiter = ActionRateLimiter(LIMITER, BOUNDS)
    limiter.reset(pose, gripper)
    return limiter


def fresh_monitor(config: SafetyConfig = SAFETY, pose=START, gripper=1.0) -> SafetyMonitor:
    monitor = SafetyMonitor(config)
    monitor.on_image(0.0)
    monitor.on_joint_state(None, 0.0, pose=pose, gripper=gripper)
    return monitor


def feed(monitor: SafetyMonitor, now: float) -> None:
    """Fresh camera and joint states; the arm tracks the last output perfectly."""
    monitor.on_image(now)
    monitor.on_joint_state(None, now, pose=monitor.hold_pose)


def rpy_of(pose: np.ndarray) -> np.ndarray:
    return BOUNDS.rpy(pose[:3, :3])


# ---------------------------------------------------------------------------------- the limiter
def run_deltas(limiter: ActionRateLimiter, deltas, t0: float, dt: float = 0.2):
    """One chunk per delta, each consumed at once; returns the outputs (5 steps per delta)."""
    outputs = []
    now = t0
    for delta in deltas:
        result = limiter.submit(ActionChunkData(now, dt, np.atleast_2d(delta)), now)
        assert result.accepted, result.message
        for _ in range(int(round(dt / LIMITER.period))):
            outputs.append(limiter.step(now))
            now += LIMITER.period
    return outputs, now


def test_pushing_past_a_face_leaves_the_goal_on_it_and_a_reversal_moves_back_at_once():
    limiter = limiter_at()
    push = [0.0, 0.05, 0.0, 0.0, 0.0, 0.0, 1.0]  # +y at the Bridge clip, for 4 s
    outputs, now = run_deltas(limiter, [push] * 20, 0.0)
    high_y = SAFETY.workspace_high[1]
    assert limiter.goal[1, 3] == pytest.approx(high_y), 'the goal left the box (windup)'
    assert outputs[-1].pose[1, 3] == pytest.approx(high_y, abs=1e-6)
    back = [0.0, -0.02, 0.0, 0.0, 0.0, 0.0, 1.0]
    outputs, _ = run_deltas(limiter, [back], now)
    assert limiter.goal[1, 3] == pytest.approx(high_y - 0.02), 'the reversal was absorbed'
    assert outputs[1].pose[1, 3] < high_y - 1e-6, 'the target did not start back within 2 periods'


def test_a_yaw_push_past_its_bound_is_clipped_and_the_reversal_acts_at_once():
    limiter = limiter_at()
    twist = [0.0, 0.0, 0.0, 0.0, 0.0, 0.25, 1.0]  # base-frame yaw = relative roll for Bridge
    run_deltas(limiter, [twist] * 20, 0.0)
    rpy = rpy_of(limiter.goal)
    assert np.all(rpy <= np.asarray(SAFETY.orientation_high) + 1e-9)
    assert np.all(rpy >= np.asarray(SAFETY.orientation_low) - 1e-9)
    at_bound = rpy.copy()
    run_deltas(limiter, [[0.0, 0.0, 0.0, 0.0, 0.0, -0.1, 1.0]], 10.0)
    assert np.max(np.abs(rpy_of(limiter.goal) - at_bound)) == pytest.approx(0.1, abs=1e-6)


def test_reanchor_drops_the_refused_motion_and_keeps_the_queue():
    limiter = limiter_at()
    chunk = ActionChunkData(0.0, 0.2, np.array([[0.0, 0.0, 0.01, 0, 0, 0, 1.0]] * 3))
    assert limiter.submit(chunk, 0.0).accepted
    limiter.step(0.0)
    safe = pose_at([0.3, 0.0, 0.14])
    assert limiter.reanchor(safe, 0.4)
    assert np.allclose(limiter.goal, safe)
    assert len(limiter.pending) == 2
    out = limiter.step(0.2)  # the next delta applies to the safe pose
    assert limiter.goal[2, 3] == pytest.approx(0.15)
    assert out.gripper == pytest.approx(min(1.0, 0.4 + LIMITER.max_gripper_velocity * 0.05))


def test_a_goal_that_starts_outside_the_box_only_moves_back_toward_it():
    outside = pose_at([0.3, SAFETY.workspace_high[1] + 0.05, 0.15])
    limiter = limiter_at(outside)
    run_deltas(limiter, [[0.0, 0.02, 0.0, 0, 0, 0, 1.0]], 0.0)
    assert limiter.goal[1, 3] == pytest.approx(outside[1, 3]), 'moved further out'
    run_deltas(limiter, [[0.0, -0.02, 0.0, 0, 0, 0, 1.0]], 1.0)
    assert limiter.goal[1, 3] == pytest.approx(outside[1, 3] - 0.02), 'no jump onto the box'


deltas = st.lists(
    st.lists(st.floats(-0.06, 0.06), min_size=7, max_size=7).map(
        lambda a: [a[0], a[1], a[2], 5 * a[3], 5 * a[4], 5 * a[5], abs(a[6]) * 10]
    ),
    min_size=1,
    max_size=25,
)


@given(deltas, st.lists(st.floats(0.0, 0.3), min_size=1, max_size=25))
def test_property_the_goal_never_leaves_the_safe_set_and_jerk_stays_limited(actions, jitter):
    limiter = limiter_at()
    now, outputs = 0.0, [limiter.step(0.0)]
    for k, action in enumerate(actions):
        now += jitter[k % len(jitter)]  # irregular arrival; steps stay one period each
        limiter.submit(ActionChunkData(now, 0.2, np.atleast_2d(action)), now)
        for _ in range(3):
            outputs.append(limiter.step(now))
            assert BOUNDS.contains(limiter.goal, tolerance=1e-9), 'the goal left the safe set'
            now += 0.01
    positions = np.array([outputs[0].pose[:3, 3]] * 2 + [o.pose[:3, 3] for o in outputs])
    period = LIMITER.period
    velocity = np.diff(positions, axis=0) / period
    acceleration = np.diff(velocity, axis=0) / period
    jerk = np.diff(acceleration, axis=0) / period
    assert np.all(np.abs(velocity) <= LIMITER.max_linear_velocity * (1 + 1e-6) + 1e-9)
    assert np.all(np.abs(acceleration) <= LIMITER.max_linear_acceleration * (1 + 1e-6) + 1e-6)
    assert np.all(np.abs(jerk) <= LIMITER.max_linear_jerk * (1 + 1e-6) + 1e-4)


# ---------------------------------------------------------------------------------- the monitor
def test_a_burst_within_one_period_moves_no_further_than_one_period_allows():
    monitor = fresh_monitor()
    feed(monitor, 0.0)
    far = pose_at([0.4, 0.2, 0.25])
    first = monitor.filter(far, 1.0, 0.0)
    moved = [np.linalg.norm(first.pose[:3, 3] - START[:3, 3])]
    now = 0.0
    for _ in range(20):  # 20 targets within 20 ms
        now += 0.001
        feed(monitor, now)
        moved.append(np.linalg.norm(monitor.filter(far, 1.0, now).pose[:3, 3] - START[:3, 3]))
    assert moved[-1] <= SAFETY.max_step_translation * (1 + now / PERIOD) + TOL


@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 0.12),  # time to the next call [s]: bursts (0) to slow periods
            st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
            st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3),
            st.floats(-0.5, 1.5),
            st.booleans(),  # tick instead of filter
        ),
        min_size=1,
        max_size=40,
    )
)
def test_property_steps_scale_with_real_time_and_outputs_stay_in_the_real_bounds(calls):
    monitor = fresh_monitor()
    now, last_time = 0.0, None
    previous, previous_gripper = START.copy(), 1.0
    for dt, offset, rpy, gripper, tick in calls:
        now += dt
        feed(monitor, now)
        target = pose_at(START[:3, 3] + 0.3 * np.asarray(offset), rpy)
        decision = monitor.tick(now) if tick else monitor.filter(target, gripper, now)
        assert decision.pose is not None
        scale = 1.0 if last_time is None else min(now - last_time, PERIOD) / PERIOD
        step = np.linalg.norm(decision.pose[:3, 3] - previous[:3, 3])
        turn = np.linalg.norm(
            Rotation.from_matrix(decision.pose[:3, :3] @ previous[:3, :3].T).as_rotvec()
        )
        assert step <= SAFETY.max_step_translation * scale + 1e-9
        assert turn <= SAFETY.max_step_rotation * scale + 1e-9
        assert abs(decision.gripper - previous_gripper) <= SAFETY.max_step_gripper * scale + 1e-9
        assert SAFETY.workspace.contains(decision.pose[:3, 3], tolerance=1e-9)
        got = rpy_of(decision.pose)  # roll and pitch never widened beyond the profile
        assert np.all(got >= np.asarray(SAFETY.orientation_low) - 1e-6)
        assert np.all(got <= np.asarray(SAFETY.orientation_high) + 1e-6)
        if decision.outcome in ('passed', 'clipped'):  # re-sent holds use no motion
            last_time = now
        previous, previous_gripper = decision.pose, decision.gripper


def test_an_arm_outside_the_box_holds_where_it_is_and_only_moves_back():
    outside = pose_at([0.3, SAFETY.workspace_high[1] + 0.05, 0.15])
    monitor = fresh_monitor(pose=outside)
    assert np.allclose(monitor.hold_pose, outside), 'the reference jumped onto the box'
    feed(monitor, 0.05)
    held = monitor.filter(pose_at([0.3, 0.5, 0.15]), 1.0, 0.05)  # further out
    assert held.pose[1, 3] == pytest.approx(outside[1, 3])
    assert 'CLIP_TOWARD_WORKSPACE' in held.reasons
    feed(monitor, 0.10)
    back = monitor.filter(pose_at([0.3, 0.0, 0.15]), 1.0, 0.10)
    assert outside[1, 3] - SAFETY.max_step_translation - TOL <= back.pose[1, 3] < outside[1, 3]


@given(
    st.lists(st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3), min_size=1, max_size=30),
    st.floats(0.01, 0.2),
)
def test_property_outside_the_box_the_violation_never_grows(targets, out_by):
    outside = pose_at([0.3, SAFETY.workspace_high[1] + out_by, SAFETY.workspace_low[2] - out_by])
    monitor = fresh_monitor(pose=outside)
    low, high = np.asarray(SAFETY.workspace_low), np.asarray(SAFETY.workspace_high)
    violation = np.maximum(low - outside[:3, 3], 0) + np.maximum(outside[:3, 3] - high, 0)
    now = 0.0
    for offset in targets:
        now += PERIOD
        feed(monitor, now)
        decision = monitor.filter(pose_at(outside[:3, 3] + 0.3 * np.asarray(offset)), 1.0, now)
        p = decision.pose[:3, 3]
        new = np.maximum(low - p, 0) + np.maximum(p - high, 0)
        assert np.all(new <= violation + 1e-12)
        violation = new


def test_the_measured_gripper_is_the_reference_and_survives_estop_and_reset():
    monitor = fresh_monitor(gripper=0.2)  # holding an object at start-up
    feed(monitor, 0.05)
    assert monitor.tick(0.05).gripper == pytest.approx(0.2)
    monitor.on_estop(True, 0.1)
    monitor.on_estop(False, 0.2)
    monitor.on_joint_state(None, 0.25, pose=START, gripper=0.15)  # squeezed a bit meanwhile
    ok, _ = monitor.reset(0.3)
    assert ok
    feed(monitor, 0.3)
    assert monitor.tick(0.3).gripper == pytest.approx(0.15)


def test_a_tracking_error_holds_and_reanchors_on_the_measured_pose():
    config = SafetyConfig.from_dict({
        **{k: getattr(SAFETY, k) for k in BOUNDS_KEYS},
        'max_tracking_error': 0.03,
        'control_rate': SAFETY.control_rate,
    })
    monitor = fresh_monitor(config)
    blocked = pose_at([0.3, 0.0, 0.10])  # the arm stuck 5 cm below the command
    monitor.on_image(0.05)
    monitor.on_joint_state(None, 0.05, pose=blocked)
    decision = monitor.filter(START, 1.0, 0.05)
    assert decision.hold and decision.state == SafetyState.HOLD
    assert decision.reasons == ('HALT_FOR_TRACKING_ERROR',)
    assert np.allclose(decision.pose, blocked), 'the command keeps pushing the blocked arm'


def test_the_policy_watchdog_holds_only_while_an_instruction_is_active():
    config = SafetyConfig.from_dict({
        **{k: getattr(SAFETY, k) for k in BOUNDS_KEYS},
        'policy_timeout': 1.0,
        'command_timeout': math.inf,
        'control_rate': SAFETY.control_rate,
    })
    monitor = fresh_monitor(config)
    feed(monitor, 5.0)
    assert 'HALT_FOR_STALE_POLICY' not in monitor.tick(5.0).reasons, 'idle must not trip it'
    monitor.on_instruction('pick up the block', 5.0)
    feed(monitor, 5.9)
    assert 'HALT_FOR_STALE_POLICY' not in monitor.tick(5.9).reasons
    feed(monitor, 6.1)
    assert 'HALT_FOR_STALE_POLICY' in monitor.tick(6.1).reasons
    monitor.on_policy_alive(6.2)  # a chunk or a status
    feed(monitor, 6.3)
    assert 'HALT_FOR_STALE_POLICY' not in monitor.filter(START, 1.0, 6.3).reasons
    monitor.on_instruction('', 6.4)
    feed(monitor, 9.0)
    assert 'HALT_FOR_STALE_POLICY' not in monitor.tick(9.0).reasons


def test_pose_bounds_come_from_the_shared_keys_of_every_profile():
    for name in ('widowx_bridge', 'franka_tabletop', 'franka_droid'):
        prof = load_profile(name)
        bounds = PoseBounds.from_dict(prof.common)
        _, safety = profile_configs(name)
        assert bounds == safety.bounds
        assert not set(BOUNDS_KEYS) & set(prof.section('safety_monitor', 'safety'))


# ---------------------------------------------------------------------------------- the adapter
def test_the_adapter_velocity_check_scales_with_the_time_since_the_last_command():
    adapter = ArmAdapter(AdapterConfig(interface='xs_sdk', robot='wx250s'))
    kin = get_kinematics('wx250s')
    q0 = np.zeros(len(kin.joint_names))
    q0[1], q0[2] = -0.3, 0.3
    pose = kin.fk(q0)
    assert adapter.command(EndEffectorCommand(pose, 1.0), q0, period=PERIOD, now=10.0).ok
    moved = pose.copy()
    moved[2, 3] += 0.01
    sent = adapter.last_q.copy()
    burst = adapter.command(EndEffectorCommand(moved, 1.0), q0, period=PERIOD, now=10.001)
    # 1 ms later: a step toward the target at the joint speed limits, not the whole 1 cm
    assert burst.ok and burst.reason == 'LIMIT_JOINT_VELOCITY'
    speed_limit = np.asarray(kin.max_velocity)
    assert np.all(np.abs(burst.q - sent) <= speed_limit * 0.001 + 1e-6)
    later = adapter.command(EndEffectorCommand(moved, 1.0), q0, period=PERIOD, now=10.05)
    assert later.ok and later.reason == 'OK'
    np.testing.assert_allclose(kin.fk(later.q), moved, atol=1e-4)
    jump = moved.copy()
    jump[1, 3] += 0.3  # far more than two periods of joint motion: refused, nothing sent
    refused = adapter.command(EndEffectorCommand(jump, 1.0), q0, period=PERIOD, now=10.051)
    assert not refused.ok


# ---------------------------------------------------------------------------------- issue 22
def droid_official_action(cartesian_velocity: np.ndarray, gripper_position: float) -> np.ndarray:
    """openvla/openvla prismatic/vla/datasets/rlds/oxe/utils/droid_utils.py,
    droid_baseact_transform / droid_finetuning_transform: the action OpenVLA trains on."""
    return np.concatenate(
        [cartesian_velocity[:3], cartesian_velocity[3:6], [1.0 - gripper_position]]
    )


def test_a_closed_droid_record_commands_a_closed_franka_gripper():
    action = droid_official_action(np.zeros(6), gripper_position=1.0)  # DROID: 1 = closed
    profile = load_profile('franka_droid').node_params('policy_node')
    convention = profile['gripper_convention']
    assert convention == GripperConvention.OPEN_IS_ONE
    assert get_action_space('droid').default_gripper_convention == GripperConvention.OPEN_IS_ONE
    limiter = ActionRateLimiter(profile_configs('franka_droid')[0])
    limiter.reset(np.eye(4), 1.0)
    chunk = ActionChunkData(0.0, 1 / 15, np.atleast_2d(action), 'droid', convention)
    assert limiter.submit(chunk, 0.0).accepted
    opening = limiter.pending[0].gripper
    assert opening == pytest.approx(0.0)
    command = franka_gripper_command(opening, FrankaGripperConfig())
    assert command.action == 'grasp' and command.width == pytest.approx(0.0)
    open_action = droid_official_action(np.zeros(6), gripper_position=0.0)
    limiter.reset(np.eye(4), 0.0)
    chunk = ActionChunkData(1.0, 1 / 15, np.atleast_2d(open_action), 'droid', convention)
    assert limiter.submit(chunk, 1.0).accepted
    command = franka_gripper_command(limiter.pending[0].gripper, FrankaGripperConfig())
    assert command.action == 'move'
