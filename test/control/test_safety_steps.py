"""The safety monitor's checks, one limit at a time, on the real bounds of every profile.

Each check of ``SafetyMonitor.filter`` is observed from outside: which reason a target gets, in
which order, what passes, and what the counters and the latches do. The expected reason comes from
an oracle written here from the limit's definition (not from the monitor's code), so these tests
hold the pipeline to its contract whatever its internal shape.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from openvla_ros.bringup.profiles import load_profile
from openvla_ros.control.config import BOUNDS_KEYS, SafetyConfig
from openvla_ros.control.kinematics import get_kinematics
from openvla_ros.control.safety import REASON_DESCRIPTIONS, SafetyMonitor, SafetyState

PROFILES = ('widowx_bridge', 'franka_droid', 'franka_tabletop')

# The clip reasons in the order filter() checks the limits.
CLIP_ORDER = (
    'CLIP_ORIENTATION_LIMIT',
    'CLIP_TO_WORKSPACE',
    'CLIP_STEP_TRANSLATION',
    'CLIP_STEP_ROTATION',
    'CLIP_GRIPPER_RANGE',
    'CLIP_GRIPPER_RATE',
    'CLIP_TOWARD_WORKSPACE',
)
EPS = 1e-9


def safety_config(name: str, **override) -> SafetyConfig:
    """The monitor config a node builds from the profile (shared bounds in /**)."""
    prof = load_profile(name)
    return SafetyConfig.from_dict(
        {
            **{k: prof.common[k] for k in BOUNDS_KEYS},
            **prof.section('safety_monitor', 'safety'),
            'control_rate': float(prof.get('control_rate')),
            **override,
        }
    )


def robot(name: str) -> str:
    return str(load_profile(name).get('robot'))


def centre_pose(config: SafetyConfig) -> np.ndarray:
    """The nominal orientation at the centre of the box (reachable by every profile's arm)."""
    pose = np.eye(4)
    pose[:3, :3] = config.bounds.nominal
    pose[:3, 3] = 0.5 * (np.asarray(config.workspace_low) + np.asarray(config.workspace_high))
    return pose


def started(config: SafetyConfig, q: np.ndarray | None = None) -> SafetyMonitor:
    monitor = SafetyMonitor(config)
    monitor.on_image(0.0)
    monitor.on_joint_state(q, 0.0, pose=centre_pose(config), gripper=1.0)
    return monitor


def feed(monitor: SafetyMonitor, now: float) -> None:
    """Fresh camera and joint states; the arm tracks the last output perfectly."""
    monitor.on_image(now)
    monitor.on_joint_state(None, now, pose=monitor.hold_pose)


def orientation_ok(config: SafetyConfig, rot: np.ndarray, anchor: np.ndarray) -> bool:
    """Euler 'xyz' of R_nominal^T R inside the bounds, enlarged per angle to include the anchor."""
    rpy = config.bounds.rpy(rot)
    ref = config.bounds.rpy(anchor)
    low = np.minimum(config.orientation_low, ref) - EPS
    high = np.maximum(config.orientation_high, ref) + EPS
    return bool(np.all(rpy >= low) and np.all(rpy <= high))


def turn_angle(rot: np.ndarray, anchor: np.ndarray) -> float:
    return float(np.linalg.norm(Rotation.from_matrix(rot @ anchor.T).as_rotvec()))


def is_subsequence(items, order) -> bool:
    positions = [order.index(item) for item in items]
    return positions == sorted(positions) and len(set(positions)) == len(positions)


# one target: (fraction of a period since the last call, offset in step units, rotation vector in
# step units, gripper)
unit = st.floats(-1.0, 1.0, allow_nan=False)
targets = st.lists(
    st.tuples(
        st.floats(0.0, 2.0, allow_nan=False),
        st.tuples(unit, unit, unit),
        st.tuples(unit, unit, unit),
        st.floats(-0.5, 1.5, allow_nan=False),
        st.sampled_from((0.0, 0.5, 1.5, 4.0, 40.0)),  # reach: no move .. far outside the box
    ),
    min_size=1,
    max_size=25,
)


def target_from(config: SafetyConfig, prev: np.ndarray, offset, rotvec, reach) -> np.ndarray:
    pose = prev.copy()
    pose[:3, 3] += np.asarray(offset) * config.max_step_translation * reach
    turn = Rotation.from_rotvec(np.asarray(rotvec) * config.max_step_rotation * reach)
    pose[:3, :3] = turn.as_matrix() @ prev[:3, :3]
    return pose


@pytest.mark.parametrize('name', PROFILES)
@settings(max_examples=60)
@given(sequence=targets)
def test_property_clip_mode_names_each_clipped_limit_once_in_pipeline_order(name, sequence):
    config = safety_config(name, mode='clip')
    monitor = started(config)
    now, prev_g = 0.0, 1.0
    for fraction, offset, rotvec, gripper, reach in sequence:
        now += fraction * config.period
        feed(monitor, now)
        prev = monitor.hold_pose
        scale = monitor.step_scale(now)
        target = target_from(config, prev, offset, rotvec, reach)
        counts = (monitor.passed, monitor.clipped, monitor.rejected)

        decision = monitor.filter(target, gripper, now)

        reasons = decision.reasons
        assert is_subsequence(reasons, CLIP_ORDER), reasons
        assert len(decision.messages) == len(reasons)
        # one check per limit, each named exactly when its own limit is exceeded
        assert ('CLIP_ORIENTATION_LIMIT' in reasons) == (
            not orientation_ok(config, target[:3, :3], prev[:3, :3])
        )
        in_box = config.bounds.clip_position(target[:3, 3], anchor=prev[:3, 3])
        assert ('CLIP_TO_WORKSPACE' in reasons) == (not np.array_equal(in_box, target[:3, 3]))
        assert ('CLIP_GRIPPER_RANGE' in reasons) == (gripper < 0.0 or gripper > 1.0)
        g = min(max(gripper, 0.0), 1.0)
        assert ('CLIP_GRIPPER_RATE' in reasons) == (
            abs(g - prev_g) > config.max_step_gripper * scale
        )
        assert 'CLIP_TOWARD_WORKSPACE' not in reasons  # the arm starts and stays inside
        # what the limits left alone passes bit for bit
        if not {'CLIP_TO_WORKSPACE', 'CLIP_STEP_TRANSLATION'} & set(reasons):
            np.testing.assert_array_equal(decision.pose[:3, 3], target[:3, 3])
        if not {'CLIP_ORIENTATION_LIMIT', 'CLIP_STEP_ROTATION'} & set(reasons):
            np.testing.assert_array_equal(decision.pose[:3, :3], target[:3, :3])
        if 'CLIP_STEP_TRANSLATION' in reasons:
            step = np.linalg.norm(decision.pose[:3, 3] - prev[:3, 3])
            assert step == pytest.approx(config.max_step_translation * scale, abs=1e-12)
        if 'CLIP_GRIPPER_RATE' in reasons:
            assert abs(decision.gripper - prev_g) == pytest.approx(
                config.max_step_gripper * scale, abs=1e-12
            )
        elif 'CLIP_GRIPPER_RANGE' not in reasons:
            assert decision.gripper == gripper
        # state, outcome, counters and status agree
        if reasons:
            assert (decision.state, decision.outcome) == (SafetyState.LIMITED, 'clipped')
            expected_counts = (counts[0], counts[1] + 1, counts[2])
        else:
            assert (decision.state, decision.outcome) == (SafetyState.OK, 'passed')
            expected_counts = (counts[0] + 1, counts[1], counts[2])
        assert (monitor.passed, monitor.clipped, monitor.rejected) == expected_counts
        assert not decision.hold
        np.testing.assert_array_equal(monitor.hold_pose, decision.pose)
        status = monitor.status(now)
        assert (status.state, status.reasons, status.messages) == (
            decision.state,
            decision.reasons,
            decision.messages,
        )
        assert config.bounds.contains(decision.pose)
        assert turn_angle(decision.pose[:3, :3], prev[:3, :3]) <= (
            config.max_step_rotation * scale + EPS
        )
        prev_g = decision.gripper


@pytest.mark.parametrize('name', PROFILES)
@settings(max_examples=60)
@given(sequence=targets)
def test_property_reject_mode_names_the_first_exceeded_limit_and_holds(name, sequence):
    config = safety_config(name, mode='reject')
    monitor = started(config)
    now, prev_g = 0.0, 1.0
    for fraction, offset, rotvec, gripper, reach in sequence:
        now += fraction * config.period
        feed(monitor, now)
        prev = monitor.hold_pose
        scale = monitor.step_scale(now)
        target = target_from(config, prev, offset, rotvec, reach)
        g = min(max(gripper, 0.0), 1.0)
        exceeded = [
            ('REJECT_ORIENTATION_LIMIT', not orientation_ok(config, target[:3, :3], prev[:3, :3])),
            (
                'REJECT_OUTSIDE_WORKSPACE',
                not np.array_equal(
                    config.bounds.clip_position(target[:3, 3], anchor=prev[:3, 3]), target[:3, 3]
                ),
            ),
            (
                'REJECT_STEP_TRANSLATION',
                float(np.linalg.norm(target[:3, 3] - prev[:3, 3]))
                > config.max_step_translation * scale,
            ),
            (
                'REJECT_STEP_ROTATION',
                turn_angle(target[:3, :3], prev[:3, :3]) > config.max_step_rotation * scale,
            ),
            ('REJECT_GRIPPER_RATE', abs(g - prev_g) > config.max_step_gripper * scale),
        ]
        first = next((code for code, hit in exceeded if hit), None)
        rejected = monitor.rejected

        decision = monitor.filter(target, gripper, now)

        if first is not None:
            assert decision.reasons == (first,)
            assert (decision.state, decision.outcome, decision.hold) == (
                SafetyState.HOLD,
                'rejected',
                True,
            )
            np.testing.assert_array_equal(decision.pose, prev)
            assert decision.gripper == prev_g
            assert monitor.rejected == rejected + 1
        else:
            range_clip = gripper < 0.0 or gripper > 1.0
            assert decision.reasons == (('CLIP_GRIPPER_RANGE',) if range_clip else ())
            assert decision.state == (SafetyState.LIMITED if range_clip else SafetyState.OK)
            np.testing.assert_array_equal(decision.pose, target)
            assert decision.gripper == g
            prev_g = g


def _bad_shape(pose):
    return pose[:3]


def _nan(pose):
    pose = pose.copy()
    pose[1, 2] = math.nan
    return pose


def _skewed(pose):
    pose = pose.copy()
    pose[:3, :3] *= 1.01
    return pose


# defects in the order filter() checks them, with the reason and a word of the message
POSE_DEFECTS = (
    ('shape', _bad_shape, 'REJECT_INVALID_POSE', 'numeric matrix'),
    ('nan', _nan, 'REJECT_NON_FINITE', 'NaN or infinite'),
)
GRIPPER_DEFECTS = (
    ('not a number', 'open', 'REJECT_NON_FINITE', 'is not a number'),
    ('infinite', math.inf, 'REJECT_NON_FINITE', 'the gripper value is inf'),
)


@pytest.mark.parametrize('name', PROFILES)
@given(
    pose_defect=st.sampled_from((None,) + POSE_DEFECTS),
    gripper_defect=st.sampled_from((None,) + GRIPPER_DEFECTS),
    skewed=st.booleans(),
    stale_camera=st.booleans(),
)
def test_property_input_checks_run_in_order_and_the_first_defect_is_named(
    name, pose_defect, gripper_defect, skewed, stale_camera
):
    config = safety_config(name)
    monitor = started(config)
    if stale_camera:
        now = config.image_timeout + 1.0  # no image since t = 0; the joint states stay fresh
        monitor.on_joint_state(None, now, pose=monitor.hold_pose)
    else:
        now = 0.5 * config.period
        feed(monitor, now)
    target = monitor.hold_pose
    target[0, 3] += 0.1 * config.max_step_translation
    gripper = 0.9
    expected = []
    if skewed:
        target = _skewed(target)
    if pose_defect is not None:
        target = pose_defect[1](target)
        expected.append(pose_defect[2:])
    if gripper_defect is not None:
        gripper = gripper_defect[1]
        expected.append(gripper_defect[2:])
    if skewed:
        expected.append(('REJECT_INVALID_POSE', 'not orthonormal'))
    if stale_camera:
        expected.append(('HALT_FOR_STALE_CAMERA', 'camera image'))
    hold = monitor.hold_pose

    decision = monitor.filter(target, gripper, now)

    if not expected:
        assert decision.outcome == 'passed'
        return
    code, words = expected[0]
    assert decision.reasons == (code,)
    assert words in decision.messages[0]
    assert (decision.state, decision.outcome, decision.hold) == (
        SafetyState.HOLD,
        'rejected',
        True,
    )
    np.testing.assert_array_equal(decision.pose, hold)
    assert monitor.rejected == 1


# the IK callable's misbehaviours and the fault each one latches
BAD_IK = (
    (
        'raises',
        lambda pose: (_ for _ in ()).throw(RuntimeError('solver died')),
        'FAULT_IK_EXCEPTION',
        'RuntimeError: solver died',
    ),
    (
        'ok is not a bool',
        lambda pose: SimpleNamespace(ok='yes', q=[0.0]),
        'FAULT_IK_INVALID_RESULT',
        'without a boolean ok',
    ),
    ('no ok at all', lambda pose: object(), 'FAULT_IK_INVALID_RESULT', 'without a boolean ok'),
    (
        'ok without q',
        lambda pose: SimpleNamespace(ok=True, q=None),
        'FAULT_IK_INVALID_RESULT',
        'without finite joint positions',
    ),
    (
        'q not finite',
        lambda pose: SimpleNamespace(ok=True, q=[0.0, math.nan]),
        'FAULT_IK_INVALID_RESULT',
        'without finite joint positions',
    ),
    (
        'q not numbers',
        lambda pose: SimpleNamespace(ok=True, q='abc'),
        'FAULT_IK_INVALID_RESULT',
        'without finite joint positions',
    ),
    (
        'q not a vector',
        lambda pose: SimpleNamespace(ok=np.bool_(True), q=np.zeros((2, 2))),
        'FAULT_IK_INVALID_RESULT',
        'without finite joint positions',
    ),
)


@pytest.mark.parametrize('name', PROFILES)
@pytest.mark.parametrize('bad', BAD_IK, ids=[b[0] for b in BAD_IK])
def test_a_misbehaving_ik_latches_its_fault_and_later_faults_add_to_it(name, bad):
    _, ik, code, words = bad
    config = safety_config(name)
    monitor = started(config)
    now = config.period
    feed(monitor, now)
    hold = monitor.hold_pose
    target = hold.copy()
    target[1, 3] += 0.5 * config.max_step_translation

    decision = monitor.filter(target, 1.0, now, ik=ik)

    assert (decision.state, decision.reasons, decision.outcome) == (
        SafetyState.FAULT,
        (code,),
        'rejected',
    )
    assert words in decision.messages[0]
    np.testing.assert_array_equal(decision.pose, hold)
    # latched: a good target, with a good IK, still holds with the same reasons
    later = monitor.filter(target, 1.0, now + config.period, ik=None)
    assert (later.state, later.reasons, later.messages) == (
        SafetyState.FAULT,
        decision.reasons,
        decision.messages,
    )
    # a second fault adds its reason after the first
    ticked = monitor.tick(math.nan)
    assert ticked.state == SafetyState.FAULT
    assert ticked.reasons == (code, 'FAULT_INVALID_TIME')
    assert len(ticked.messages) == 2 and ticked.outcome == 'held'
    assert monitor.reset(now + 2 * config.period)[0]
    assert monitor.state == SafetyState.HOLD
    feed(monitor, now + 2 * config.period)
    assert monitor.filter(target, 1.0, now + 2 * config.period).outcome == 'passed'


@pytest.mark.parametrize('name', PROFILES)
def test_the_estop_latch_comes_before_every_other_check(name):
    config = safety_config(name)
    monitor = started(config)
    monitor.on_estop(True, 0.0)
    bad = np.full((4, 4), math.nan)
    engaged = monitor.filter(bad, math.nan, config.period)
    assert (engaged.state, engaged.reasons) == (SafetyState.ESTOP, ('ESTOP_ENGAGED',))
    assert engaged.messages == (REASON_DESCRIPTIONS['ESTOP_ENGAGED'],)
    monitor.on_estop(False, config.period)
    released = monitor.filter(bad, math.nan, 2 * config.period)
    assert (released.state, released.reasons) == (SafetyState.ESTOP, ('ESTOP_LATCHED',))
    assert monitor.rejected == 2


@pytest.mark.parametrize('name', PROFILES)
@pytest.mark.parametrize(
    'reason, halt',
    [
        ('IK_JOINT_LIMIT', 'HALT_FOR_JOINT_LIMIT'),
        ('IK_VELOCITY_LIMIT', 'HALT_FOR_JOINT_VELOCITY_LIMIT'),
        ('IK_NO_CONVERGENCE', 'HALT_FOR_IK_FAILURE'),
    ],
)
def test_an_ik_failure_holds_and_counts_toward_the_fault_limit(name, reason, halt):
    config = safety_config(name, ik_failures_before_fault=3)
    monitor = started(config)
    failing = lambda pose: SimpleNamespace(ok=False, q=None, reason=reason, message='no')  # noqa: E731
    now = 0.0
    for _ in range(2):
        now += config.period
        feed(monitor, now)
        target = monitor.hold_pose
        target[2, 3] += 0.5 * config.max_step_translation
        decision = monitor.filter(target, 1.0, now, ik=failing)
        assert (decision.state, decision.reasons, decision.messages) == (
            SafetyState.HOLD,
            (halt,),
            (f'{reason}: no',),
        )
    now += config.period
    feed(monitor, now)
    decision = monitor.filter(target, 1.0, now, ik=failing)
    assert (decision.state, decision.reasons) == (
        SafetyState.FAULT,
        ('FAULT_IK_REPEATED_FAILURE',),
    )
    assert f'3 times in a row; last: {reason}: no' in decision.messages[0]


@pytest.mark.parametrize('name', PROFILES)
@settings(max_examples=25)
@given(sequence=targets)
def test_property_the_real_ik_solves_exactly_the_output_and_is_skipped_for_the_hold_pose(
    name, sequence
):
    config = safety_config(name)
    kin = get_kinematics(robot(name))
    start = kin.ik(centre_pose(config), np.zeros(len(kin.joint_names)))
    assert start.ok
    monitor = started(config, q=np.asarray(start.q))
    now = 0.0
    for fraction, offset, rotvec, gripper, reach in sequence:
        now += fraction * config.period
        feed(monitor, now)
        prev, prev_q = monitor.hold_pose, monitor.hold_q
        asked = []

        def ik(pose, seed=prev_q, dt=config.period, asked=asked):
            asked.append(pose.copy())
            return kin.ik(pose, seed, dt=dt)

        target = target_from(config, prev, offset, rotvec, reach)
        decision = monitor.filter(target, gripper, now, ik=ik)
        if decision.hold:
            assert decision.outcome == 'rejected'
            assert decision.state == SafetyState.HOLD
            assert len(decision.reasons) == 1 and decision.reasons[0] in (
                'HALT_FOR_IK_FAILURE',
                'HALT_FOR_JOINT_LIMIT',
                'HALT_FOR_JOINT_VELOCITY_LIMIT',
            )
            np.testing.assert_array_equal(decision.pose, prev)
            np.testing.assert_array_equal(decision.joint_positions, prev_q)
            continue
        assert decision.joint_positions is not None
        np.testing.assert_array_equal(monitor.hold_q, decision.joint_positions)
        if np.array_equal(decision.pose, prev):
            assert asked == []  # the hold pose again: its joints are known, no solve
            np.testing.assert_array_equal(decision.joint_positions, prev_q)
        else:
            assert len(asked) == 1
            np.testing.assert_array_equal(asked[0], decision.pose)
