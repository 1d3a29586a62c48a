"""Rate limiter: each delta exactly once, limits by finite differences, merge policies,
refusals."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from openvla_ros.control.actions import apply_delta
from openvla_ros.control.config import LimiterConfig
from openvla_ros.control.errors import NotReadyError
from openvla_ros.control.rate_limiter import ActionChunkData, ActionRateLimiter

START = np.eye(4)
START[:3, 3] = [0.3, -0.09, 0.26]
TOL = 1e-6


def _limiter(**overrides) -> ActionRateLimiter:
    limiter = ActionRateLimiter(LimiterConfig(**overrides))
    limiter.reset(START, 1.0)
    return limiter


def _chunk(stamp, actions, dt=0.2, **kw) -> ActionChunkData:
    return ActionChunkData(stamp=stamp, dt=dt, actions=np.atleast_2d(actions), **kw)


def _check_limits(outputs, config: LimiterConfig) -> None:
    period = config.period
    positions = np.array([o.pose[:3, 3] for o in outputs])
    velocity = np.diff(positions, axis=0) / period
    assert np.all(np.abs(velocity) <= config.max_linear_velocity * (1 + TOL) + TOL)
    acceleration = np.diff(velocity, axis=0) / period
    assert np.all(np.abs(acceleration) <= config.max_linear_acceleration * (1 + TOL) + TOL)
    omega = np.array([
        Rotation.from_matrix(b.pose[:3, :3] @ a.pose[:3, :3].T).as_rotvec() / period
        for a, b in zip(outputs[:-1], outputs[1:])
    ])
    assert np.all(np.abs(omega) <= config.max_angular_velocity * (1 + TOL) + TOL)
    alpha = np.diff(omega, axis=0) / period
    assert np.all(np.abs(alpha) <= config.max_angular_acceleration * (1 + TOL) + 1e-4)


def test_step_before_reset_raises_not_ready():
    with pytest.raises(NotReadyError, match='call reset'):
        ActionRateLimiter().step(0.0)


def test_submit_before_reset_is_refused_with_a_reason():
    result = ActionRateLimiter().submit(_chunk(0.0, np.zeros(7)), 0.0)
    assert not result.accepted
    assert result.reason == 'REJECT_NOT_READY'


def test_a_single_bridge_action_moves_the_goal_once_and_the_target_settles_on_it():
    limiter = _limiter()
    action = np.array([0.02, -0.01, 0.01, 0.1, 0.0, -0.1, 0.0])
    assert limiter.submit(_chunk(0.0, action), 0.1).accepted
    outputs = [limiter.step(0.1 + k * 0.02) for k in range(100)]
    expected = apply_delta(START, action)
    np.testing.assert_allclose(outputs[-1].pose, expected, atol=1e-9)
    np.testing.assert_allclose(outputs[-1].goal, expected, atol=1e-12)
    assert outputs[-1].hold
    assert outputs[-1].gripper == 0.0
    assert sum(len(o.consumed) for o in outputs) == 1
    _check_limits([limiter_output for limiter_output in outputs], limiter.config)


def test_actions_are_due_at_stamp_plus_index_times_dt():
    limiter = _limiter()
    actions = np.zeros((3, 7))
    actions[:, 0] = 0.01
    limiter.submit(_chunk(1.0, actions, dt=0.2), 1.0)
    assert limiter.step(1.0).consumed == ((0, 0),)
    assert limiter.step(1.1).consumed == ()
    assert limiter.step(1.2).consumed == ((0, 1),)
    assert limiter.step(1.4).consumed == ((0, 2),)


def test_repeating_the_same_chunk_never_applies_its_delta_twice():
    limiter = _limiter()
    chunk = _chunk(0.0, [0.01, 0, 0, 0, 0, 0, 1])
    assert limiter.submit(chunk, 0.05).accepted
    again = limiter.submit(chunk, 0.06)
    assert not again.accepted
    assert again.reason == 'DROP_DUPLICATE_STAMP'
    for k in range(60):
        limiter.step(0.05 + 0.02 * k)
    assert limiter.goal[0, 3] == pytest.approx(0.31)


def test_a_reordered_chunk_is_dropped():
    limiter = _limiter()
    assert limiter.submit(_chunk(1.0, np.zeros(7)), 1.0).accepted
    result = limiter.submit(_chunk(0.8, np.zeros(7)), 1.0)
    assert result.reason == 'DROP_OUT_OF_ORDER'


def test_a_stale_chunk_is_dropped_with_its_age():
    limiter = _limiter(max_chunk_age=0.5)
    result = limiter.submit(_chunk(0.0, np.zeros(7)), 0.75)
    assert result.reason == 'DROP_STALE_CHUNK'
    assert '0.750 s old' in result.message


def test_a_chunk_with_nan_is_refused_naming_the_value():
    limiter = _limiter()
    actions = np.zeros((2, 7))
    actions[1, 3] = math.nan
    result = limiter.submit(_chunk(0.0, actions), 0.0)
    assert result.reason == 'REJECT_NON_FINITE'
    assert 'action 1 value 3' in result.message
    assert limiter.pending == ()


def test_a_policy_publishing_faster_than_dt_cannot_repeat_a_time_slot():
    # the "delta applied 3 times" mistake: a 5 Hz action re-sent at 15 Hz
    limiter = _limiter()
    action = [0.01, 0, 0, 0, 0, 0, 1]
    accepted = 0
    for k in range(3):
        now = k / 15.0
        accepted += limiter.submit(_chunk(now, action), now).accepted
        limiter.step(now)
    assert accepted == 1
    assert limiter.counters['actions_consumed'] == 1


def test_huge_actions_are_clipped_to_the_bridge_bounds():
    limiter = _limiter()
    result = limiter.submit(_chunk(0.0, [5.0, 0, 0, 0, 0, 9.0, 1]), 0.0)
    assert result.clipped == 1
    limiter.step(0.0)
    expected = apply_delta(START, [0.05, 0, 0, 0, 0, 0.25, 1])
    np.testing.assert_allclose(limiter.goal, expected, atol=1e-12)


def test_latest_only_drops_the_pending_actions_of_the_older_chunk():
    limiter = _limiter(merge_policy='latest_only')
    limiter.submit(_chunk(0.0, np.full((4, 7), 0.01)), 0.0)
    limiter.step(0.0)
    limiter.submit(_chunk(0.2, np.full((4, 7), 0.02)), 0.25)
    dropped = {d.action_id for d in limiter.dropped}
    assert dropped == {(0, 1), (0, 2), (0, 3)}
    assert [a.sources for a in limiter.pending] == [((1, j),) for j in range(4)]


def test_weighted_average_merges_overlapping_timesteps_point_three_old_point_seven_new():
    limiter = _limiter(merge_policy='weighted_average')
    old = np.zeros((4, 7))
    old[:, 0] = 0.01
    new = np.zeros((4, 7))
    new[:, 0] = 0.03
    limiter.submit(_chunk(0.0, old), 0.0)
    limiter.step(0.0)
    limiter.submit(_chunk(0.2, new), 0.25)
    pending = limiter.pending
    assert pending[0].sources == ((0, 1), (1, 0))
    assert pending[0].delta[0] == pytest.approx(0.3 * 0.01 + 0.7 * 0.03)
    assert pending[-1].sources == ((1, 3),)


def test_append_keeps_the_pending_plan_and_queues_only_later_actions():
    limiter = _limiter(merge_policy='append')
    limiter.submit(_chunk(0.0, np.zeros((4, 7))), 0.0)
    limiter.step(0.0)
    limiter.submit(_chunk(0.2, np.zeros((4, 7))), 0.25)
    assert [a.sources[0] for a in limiter.pending] == [(0, 1), (0, 2), (0, 3), (1, 3)]


def test_clear_brakes_within_the_limits_and_then_holds():
    limiter = _limiter()
    limiter.submit(_chunk(0.0, [0.05, 0.05, 0, 0, 0, 0.25, 1]), 0.0)
    outputs = [limiter.step(0.02 * k) for k in range(8)]
    limiter.clear(0.16)
    outputs += [limiter.step(0.16 + 0.02 * k) for k in range(60)]
    _check_limits(outputs, limiter.config)
    assert outputs[-1].hold
    np.testing.assert_allclose(outputs[-1].pose, limiter.goal)


actions_strategy = st.lists(
    st.floats(-0.2, 0.2, allow_nan=False), min_size=7, max_size=7,
)
event_strategy = st.tuples(
    st.sampled_from(['chunk', 'chunk', 'step', 'clear', 'dup', 'old']),
    st.integers(1, 5),  # chunk length / steps
    st.lists(actions_strategy, min_size=5, max_size=5),
    st.floats(0.0, 0.5),  # arrival delay
)


@given(
    events=st.lists(event_strategy, min_size=1, max_size=25),
    policy=st.sampled_from(['latest_only', 'weighted_average', 'append']),
)
def test_property_every_delta_is_consumed_at_most_once_and_limits_hold(events, policy):
    config = LimiterConfig(merge_policy=policy, control_rate=50.0)
    limiter = ActionRateLimiter(config)
    limiter.reset(START, 1.0)
    now = 0.0
    stamp = 0.0
    outputs = [limiter.step(now)]
    submitted: set = set()
    for kind, n, rows, delay in events:
        if kind == 'step':
            for _ in range(n * 5):
                now += config.period
                outputs.append(limiter.step(now))
            continue
        if kind == 'clear':
            limiter.clear(now)
            continue
        if kind == 'chunk':
            stamp = max(stamp, now - delay)
            stamp += 1e-3
        elif kind == 'old':
            result = limiter.submit(_chunk(stamp - 0.1, np.array(rows[:n])), now)
            if stamp > 0.0:
                assert not result.accepted
            if result.accepted:
                submitted.update((result.chunk_id, j) for j in range(n))
            continue
        result = limiter.submit(_chunk(stamp, np.array(rows[:n])), now)
        if result.accepted:
            submitted.update((result.chunk_id, j) for j in range(n))
        now += config.period
        outputs.append(limiter.step(now))
    for _ in range(100):
        now += config.period
        outputs.append(limiter.step(now))

    consumed = [i for o in outputs for i in o.consumed]
    assert len(consumed) == len(set(consumed))
    assert set(consumed) <= submitted
    dropped = [d.action_id for d in limiter.dropped]
    assert set(consumed).isdisjoint(dropped)
    assert len(dropped) == len(set(dropped))
    _check_limits(outputs, config)
    for o in outputs:
        assert np.all(np.isfinite(o.pose))
        assert 0.0 <= o.gripper <= 1.0


@given(st.lists(st.floats(-0.05, 0.05), min_size=6, max_size=6))
def test_property_goal_is_the_composition_of_the_consumed_deltas(delta):
    limiter = _limiter()
    actions = np.tile(np.append(delta, 1.0), (3, 1))
    limiter.submit(_chunk(0.0, actions), 0.0)
    for k in range(40):
        limiter.step(0.02 * k)
    expected = START
    for record in limiter.history:
        expected = apply_delta(expected, record.action.delta)
    np.testing.assert_allclose(limiter.goal, expected, atol=1e-12)
    assert len(limiter.history) == 3
