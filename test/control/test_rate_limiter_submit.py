"""``ActionRateLimiter.submit`` on the real limiter settings of every profile and merge policy.

Checked from outside, one chunk at a time: which check refuses a chunk (validation comes before
the clock checks), that a refused chunk changes nothing but the rejected counter, and that every
action of a chunk that gets an id ends up exactly once either queued or recorded as dropped.
"""

from __future__ import annotations

import math

from hypothesis import event, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from openvla_ros.bringup.profiles import load_profile
from openvla_ros.control.actions import get_action_space
from openvla_ros.control.config import BOUNDS_KEYS, LimiterConfig, SafetyConfig
from openvla_ros.control.rate_limiter import (
    ActionChunkData,
    ActionRateLimiter,
    REASON_DESCRIPTIONS,
)

PROFILES = ('widowx_bridge', 'franka_droid', 'franka_tabletop')
POLICIES = ('latest_only', 'weighted_average', 'append')
# codes of a chunk refused before it gets an id
REFUSED = {
    'REJECT_NOT_READY',
    'REJECT_INVALID_CHUNK',
    'REJECT_NON_FINITE',
    'REJECT_UNKNOWN_ACTION_SPACE',
    'REJECT_UNKNOWN_GRIPPER_CONVENTION',
    'REJECT_FUTURE_STAMP',
    'DROP_STALE_CHUNK',
    'DROP_OUT_OF_ORDER',
    'DROP_DUPLICATE_STAMP',
}


def limiter_for(name: str, **override) -> ActionRateLimiter:
    """The limiter a node builds from the profile, clipping goals into the profile's safe set."""
    prof = load_profile(name)
    rate = float(prof.get('control_rate'))
    config = LimiterConfig.from_dict(
        {**prof.section('action_limiter', 'limiter'), 'control_rate': rate, **override}
    )
    safety = SafetyConfig.from_dict(
        {**{k: prof.common[k] for k in BOUNDS_KEYS}, 'control_rate': rate}
    )
    limiter = ActionRateLimiter(config, safety.bounds)
    pose = np.eye(4)
    pose[:3, :3] = safety.bounds.nominal
    pose[:3, 3] = 0.5 * (np.asarray(safety.workspace_low) + np.asarray(safety.workspace_high))
    limiter.reset(pose, 1.0)
    return limiter


def snapshot(limiter: ActionRateLimiter):
    pending = [(a.due, a.delta.tobytes(), a.gripper, a.sources, a.dt) for a in limiter.pending]
    counters = {k: v for k, v in limiter.counters.items() if k != 'chunks_rejected'}
    return pending, limiter.dropped, counters


# one chunk: (seconds since the last call, age of its image, dt, rows, values in units of the
# action space's bounds, defect)
DEFECTS = (
    None,
    None,
    None,
    None,
    'nan',
    'shape',
    'dt',
    'space',
    'convention',
    'stale',
    'future',
    'duplicate',
    'older',
)
chunks = st.lists(
    st.tuples(
        st.floats(0.0, 0.5, allow_nan=False),
        st.floats(0.0, 0.3, allow_nan=False),
        st.sampled_from((0.2, 0.1, 1 / 15)),
        st.integers(1, 12),
        st.floats(-2.0, 2.0, allow_nan=False),
        st.sampled_from(DEFECTS),
        st.integers(0, 2**31 - 1),
    ),
    min_size=1,
    max_size=12,
)


def make_chunk(now, age, dt, rows, reach, defect, seed, last_stamp):
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(rows, 7)) * reach * 0.05
    actions[:, 6] = rng.uniform(0.0, 1.0, size=rows)
    stamp, space, convention = now - age, 'bridge_orig', 0
    expected = None
    if defect == 'nan':
        actions[rng.integers(rows), rng.integers(7)] = math.nan
        expected = 'REJECT_NON_FINITE'
    elif defect == 'shape':
        actions = actions[:, :6]
        expected = 'REJECT_INVALID_CHUNK'
    elif defect == 'dt':
        dt = float(rng.choice([0.0, -0.2, math.nan]))
        expected = 'REJECT_INVALID_CHUNK'
    elif defect == 'space':
        space = 'no_such_space'
        expected = 'REJECT_UNKNOWN_ACTION_SPACE'
    elif defect == 'convention':
        convention = 7
        expected = 'REJECT_UNKNOWN_GRIPPER_CONVENTION'
    elif defect == 'stale':
        stamp = now - 5.0
        expected = 'DROP_STALE_CHUNK'
    elif defect == 'future':
        stamp = now + 5.0
        expected = 'REJECT_FUTURE_STAMP'
    elif defect == 'duplicate' and math.isfinite(last_stamp):
        stamp = last_stamp
        expected = 'DROP_DUPLICATE_STAMP'
    elif defect == 'older' and math.isfinite(last_stamp):
        stamp = last_stamp - 0.01
        expected = 'DROP_OUT_OF_ORDER'
    return ActionChunkData(stamp, dt, actions, space, convention), expected


@pytest.mark.parametrize('name', PROFILES)
@pytest.mark.parametrize('policy', POLICIES)
@settings(max_examples=40)
@given(sequence=chunks, queue_limit=st.sampled_from((256, 6)))
def test_property_submit_refuses_by_the_first_failed_check_and_accounts_for_every_action(
    name, policy, sequence, queue_limit
):
    limiter = limiter_for(name, merge_policy=policy, max_queue_length=queue_limit)
    space = get_action_space('bridge_orig')
    now, last_stamp, last_id = 10.0, -math.inf, -1
    for wait, age, dt, rows, reach, defect, seed in sequence:
        now += wait
        limiter.step(now)
        chunk, expected = make_chunk(now, age, dt, rows, reach, defect, seed, last_stamp)
        if expected is None and chunk.stamp < last_stamp:
            expected = 'DROP_OUT_OF_ORDER'
        elif expected is None and chunk.stamp == last_stamp:
            expected = 'DROP_DUPLICATE_STAMP'
        clock = (None, 'DROP_OUT_OF_ORDER', 'DROP_DUPLICATE_STAMP')
        if expected in clock and now - chunk.stamp > limiter.config.max_chunk_age:
            expected = 'DROP_STALE_CHUNK'  # the age is checked before the order
        before = snapshot(limiter)
        rejected = limiter.counters['chunks_rejected']

        result = limiter.submit(chunk, now)
        event(result.reason)

        assert result.reason in REASON_DESCRIPTIONS
        assert result.accepted == (result.reason == 'ACCEPTED')
        if expected is not None or result.reason in REFUSED:
            assert result.reason == expected
            assert result.chunk_id == -1
            assert (result.queued, result.skipped, result.clipped) == (0, 0, 0)
            assert snapshot(limiter) == before
            assert limiter.counters['chunks_rejected'] == rejected + 1
            continue
        if result.reason == 'REJECT_QUEUE_FULL':
            assert result.chunk_id == -1  # its id goes to the next chunk (checked there)
            assert snapshot(limiter) == before
            assert limiter.counters['chunks_rejected'] == rejected + 1
            continue
        assert result.chunk_id == last_id + 1
        last_id, last_stamp = result.chunk_id, float(chunk.stamp)
        assert result.queued + result.skipped == rows
        assert result.clipped == sum(
            bool(np.any(space.clip(row) != row)) for row in np.asarray(chunk.actions)
        )
        new_drops = limiter.dropped[len(before[1]) :]
        ids = [(result.chunk_id, j) for j in range(rows)]
        queued = [s for a in limiter.pending for s in a.sources if s[0] == result.chunk_id]
        dropped = [d.action_id for d in new_drops if d.action_id[0] == result.chunk_id]
        assert sorted(queued + dropped) == ids  # each action exactly once
        assert len(queued) == result.queued
        dues = [a.due for a in limiter.pending]
        assert dues == sorted(dues)
        if result.reason == 'DROP_NOTHING_NEW':
            assert result.queued == 0 and not result.accepted


def test_submit_before_reset_is_refused_as_not_ready():
    limiter = ActionRateLimiter(LimiterConfig())
    result = limiter.submit(ActionChunkData(0.0, 0.2, np.zeros((2, 7))), 0.0)
    assert (result.accepted, result.reason, result.chunk_id) == (False, 'REJECT_NOT_READY', -1)
    assert result.message == REASON_DESCRIPTIONS['REJECT_NOT_READY']
    assert limiter.counters['chunks_rejected'] == 1


@pytest.mark.parametrize('name', PROFILES)
@pytest.mark.parametrize(
    'now, stamp, dt, actions, reason, words',
    [
        (math.nan, 0.0, 0.2, np.zeros((1, 7)), 'REJECT_INVALID_CHUNK', 'not a finite time'),
        (0.0, math.inf, 0.2, np.zeros((1, 7)), 'REJECT_NON_FINITE', 'stamp = inf'),
        (0.0, 0.0, math.inf, np.zeros((1, 7)), 'REJECT_INVALID_CHUNK', 'dt = inf'),
        (0.0, 0.0, 0.2, [['a'] * 7], 'REJECT_INVALID_CHUNK', 'not a numeric array'),
        (0.0, 0.0, 0.2, np.zeros((0, 7)), 'REJECT_INVALID_CHUNK', 'shape (0, 7)'),
        (0.0, 0.0, 0.2, np.zeros((2, 2, 7)), 'REJECT_INVALID_CHUNK', 'shape (2, 2, 7)'),
        (0.0, 0.0, 0.2, [[0.0] * 6 + [math.inf]], 'REJECT_NON_FINITE', 'action 0 value 6 is inf'),
    ],
)
def test_each_validation_step_names_the_bad_field(name, now, stamp, dt, actions, reason, words):
    limiter = limiter_for(name)
    result = limiter.submit(ActionChunkData(stamp, dt, actions), now)
    assert (result.accepted, result.reason, result.chunk_id) == (False, reason, -1)
    assert words in result.message


@pytest.mark.parametrize('name', PROFILES)
def test_a_single_action_vector_is_one_row_and_its_clip_is_counted(name):
    limiter = limiter_for(name)
    result = limiter.submit(ActionChunkData(0.0, 0.2, np.array([1.0] * 6 + [0.5])), 0.0)
    assert (result.accepted, result.queued, result.clipped) == (True, 1, 1)
    assert result.message == 'queued 1 of 1 actions (latest_only); queue holds 1'


@pytest.mark.parametrize('name', PROFILES)
@pytest.mark.parametrize('policy', POLICIES)
def test_a_chunk_that_would_overflow_the_queue_is_refused_and_its_id_reused(name, policy):
    limiter = limiter_for(name, merge_policy=policy, max_queue_length=6)
    first = limiter.submit(ActionChunkData(0.0, 0.2, np.zeros((4, 7))), 0.0)
    assert (first.reason, first.chunk_id, first.queued) == ('ACCEPTED', 0, 4)
    before = snapshot(limiter)
    full = limiter.submit(ActionChunkData(0.05, 0.2, np.zeros((7, 7))), 0.05)
    assert (full.accepted, full.reason, full.chunk_id) == (False, 'REJECT_QUEUE_FULL', -1)
    assert 'above max_queue_length 6' in full.message
    assert snapshot(limiter) == before
    after = limiter.submit(ActionChunkData(0.1, 0.2, np.zeros((2, 7))), 0.1)
    assert after.chunk_id == 1  # (append keeps the pending plan: nothing new to queue)
    assert after.reason == ('DROP_NOTHING_NEW' if policy == 'append' else 'ACCEPTED')
