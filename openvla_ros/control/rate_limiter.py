"""The action-chunk rate limiter: policy chunks in, smooth end-effector targets out.

Semantics (each delta is consumed exactly once; see ROBOTS.md, "delta applied 3 times"):

- Action ``i`` of a chunk is due at ``stamp + latency_compensation + i * dt`` (``stamp`` is the
  image time).
- ``step(now)`` consumes every due action, in order, each applied ONCE to the previous *goal*
  (never the measured pose), giving the next goal. Overdue actions are consumed in the same step.
- No windup: with ``bounds`` (the profile's workspace box and orientation bounds, the same ones
  the safety monitor enforces) each new goal is clipped into the safe set before it becomes the
  base of the next delta, as the Bridge robot code clips each target. A push past a face leaves
  the goal on the face, so a reversal moves the target back in the next period. A goal that
  starts outside the set (an arm outside the box at start-up) may only move back toward it
  (``PoseBounds.clip`` anchored on the previous goal).
- ``reanchor(pose)``: the safety monitor refused a target (IK failure, joint limit, tracking
  error); the refused motion is dropped and target and goal restart, at rest, from the last safe
  output. Pending actions stay queued (the Bridge code's "no IK solution: do nothing" drops only
  the failing delta).
- ``reset`` and ``reanchor`` snap their pose to a 1 nm grid (``ANCHOR_GRID``): Ruckig's solution
  is not continuous in its input, and anchors 1e-14 m apart gave targets up to 2.6 mm apart.
- Every action has an id ``(chunk_id, index)``; ``history`` records which ids each consumed
  delta came from and ``dropped`` records every id that will never be applied, with the reason.
- An action is skipped when its time slot was already executed:
  ``due < last consumed due + 0.75 dt`` (0.75, not 1, tolerates stamp jitter). A policy that
  publishes faster than its ``dt`` thus cannot make the arm move faster.
- Chunks older than ``max_chunk_age`` on arrival, chunks older than the newest accepted one
  (reordered) and chunks with the same stamp (duplicates) are dropped with a reason.
- Merge policies for pending actions when a new chunk arrives (two actions overlap when their
  due times are closer than ``dt / 2``):

  - ``latest_only``: drop every pending action, queue the new chunk.
  - ``weighted_average``: overlapping actions become ``w_old * old + w_new * new`` (LeRobot:
    0.3 / 0.7), gripper included; pending actions after the new chunk's end are dropped,
    earlier ones kept.
  - ``append`` (conservative): keep the pending plan; queue only new actions after its end.

- The output target moves toward the goal with per-axis velocity, acceleration and jerk limits
  using Ruckig (time-optimal, jerk-limited, re-planned every period from the current output
  state). Translation is planned on x, y, z; rotation on the three base-frame components of the
  rotation vector from the current output orientation to the goal, re-anchored each period, so
  the rotation between consecutive outputs, ``log(R_k+1 R_k^T)``, is exactly Ruckig's per-axis
  step. Limits are per axis, not on the norm (the safety monitor bounds the norm).
- The planner aims at the goal and never extrapolates past it; the only overshoot is the
  braking distance Ruckig needs when a new goal lies behind the current motion (at most
  v^2 / 2a per axis).
- With an empty queue the output settles on the last goal and then holds (``hold = True``).
- ``clear()`` (empty instruction, e-stop) drops the queue and brakes to a stop within the
  limits; the stop point becomes the goal. ``reset(pose, gripper)`` jumps to a measured pose
  with zero velocity.
- ``step`` advances exactly one controller period per call; ``now`` only decides which actions
  are due.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import math

import numpy as np
from ruckig import (
    ControlInterface,
    InputParameter,
    OutputParameter,
    Result,
    Ruckig,
    RuckigError,
)
from scipy.spatial.transform import Rotation

from openvla_ros.control.actions import (
    ACTION_DIM,
    ActionSpace,
    get_action_space,
    gripper_to_opening,
    GripperConvention,
)
from openvla_ros.control.config import LimiterConfig, PoseBounds
from openvla_ros.control.errors import NotReadyError, UnknownNameError

__all__ = [
    'REASON_DESCRIPTIONS',
    'ActionChunkData',
    'ActionId',
    'ActionRateLimiter',
    'ConsumedAction',
    'DroppedAction',
    'LimiterOutput',
    'PendingAction',
    'SubmitResult',
]

ActionId = tuple[int, int]  # (chunk_id, index in the chunk)
_Drop = tuple[str, tuple[ActionId, ...]]  # (reason code, ids of the dropped action)

# Reason codes of SubmitResult and DroppedAction, each with its sentence.
REASON_DESCRIPTIONS: dict[str, str] = {
    'ACCEPTED': 'the chunk was queued',
    'REJECT_NOT_READY': 'the limiter has no pose yet; call reset() with the measured pose first',
    'REJECT_INVALID_CHUNK': 'the chunk is malformed (shape, dt, stamp)',
    'REJECT_NON_FINITE': 'the chunk contains a NaN or infinite value',
    'REJECT_UNKNOWN_ACTION_SPACE': 'the chunk names an action space that is not registered',
    'REJECT_UNKNOWN_GRIPPER_CONVENTION': 'the chunk names an unknown gripper convention',
    'REJECT_FUTURE_STAMP': 'the chunk is stamped further in the future than max_chunk_age',
    'REJECT_QUEUE_FULL': 'queuing the chunk would exceed max_queue_length',
    'DROP_STALE_CHUNK': 'the chunk was older than max_chunk_age when it arrived',
    'DROP_OUT_OF_ORDER': 'the chunk is older than the newest accepted chunk',
    'DROP_DUPLICATE_STAMP': 'a chunk with the same stamp was already accepted',
    'DROP_NOTHING_NEW': 'every action of the chunk was for an already executed time slot',
    'SKIP_ALREADY_EXECUTED': 'the action is for a time slot that was already executed',
    'DROP_REPLACED': 'a newer chunk replaced the pending action (merge policy)',
    'DROP_OVERLAP': 'the pending plan already covers the action (append policy)',
    'DROP_CLEARED': 'clear() dropped the pending action',
    'DROP_RESET': 'reset() dropped the pending action',
}

_EPS_TIME = 1e-9

# An action is for an already executed time slot when due < last consumed due + this * dt; below
# 1 so that a camera frame of stamp jitter (33 ms at 30 fps, 0.2 s dt) still counts as new.
# An action is a new time slot only when due at least this many dt after the last consumed one;
# the policy node spaces its frames by the same fraction so that no prediction is wasted.
SLOT_FRACTION = 0.75

# [m] and [-] grid of reset and re-anchor poses (see _snap_anchor)
ANCHOR_GRID = 1e-9
# Ruckig 0.19 raises on some inputs that sit exactly on a profile boundary (e.g. a 0.01 m move with
# a = 2 m/s^2, j = 40 m/s^3, where 2 a^3 / j^2 = 0.01). Re-planning with marginally *lower* limits
# keeps every limit and avoids the boundary; the ladder ends with acceleration-only planning.
_LIMIT_SCALES = ((1.0, 1.0), (1.0, 0.9999), (0.9999, 0.999), (0.999, 0.99), (0.99, 0.95))


@dataclass(frozen=True)
class ActionChunkData:
    """A chunk of future actions predicted from one image (core form of msg/ActionChunk).

    Attributes:
        stamp: [s] capture time of the image the chunk was predicted from.
        dt: [s] time between consecutive actions.
        actions: (N, 7) raw actions ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``.
        action_space: registry name of the delta semantics, e.g. ``'bridge_orig'``.
        gripper_convention: ``GripperConvention`` number of the gripper value.
        inference_latency: [s] model latency (informative; NaN if unknown).
    """

    stamp: float
    dt: float
    actions: np.ndarray
    action_space: str = 'bridge_orig'
    gripper_convention: int = int(GripperConvention.OPEN_IS_ONE)
    inference_latency: float = math.nan


@dataclass(frozen=True)
class SubmitResult:
    """What ``submit`` did with a chunk.

    Attributes:
        accepted: True when at least one of its actions was queued.
        reason: code from ``REASON_DESCRIPTIONS``.
        message: one sentence with the numbers.
        chunk_id: id given to the chunk (-1 when it failed validation).
        queued: actions queued (merged ones included).
        skipped: actions dropped because their time slot was already executed or already planned.
        clipped: actions clipped to the action space's raw bounds.
    """

    accepted: bool
    reason: str
    message: str
    chunk_id: int = -1
    queued: int = 0
    skipped: int = 0
    clipped: int = 0


@dataclass(frozen=True)
class PendingAction:
    """One queued action: a metric delta and an absolute gripper opening, due at ``due``.

    Attributes:
        due: [s] time at which the delta is applied to the goal.
        delta: (6,) ``[dx, dy, dz]`` m and ``[droll, dpitch, dyaw]``
            rad (already scaled and clipped).
        gripper: normalized opening, 0 = closed, 1 = open.
        sources: ids of the actions this one was made from (two or more after a weighted merge).
        dt: [s] the chunk's action period.
    """

    due: float
    delta: np.ndarray
    gripper: float
    sources: tuple[ActionId, ...]
    dt: float


@dataclass(frozen=True)
class ConsumedAction:
    """A delta that was applied to the goal (exactly once)."""

    action: PendingAction
    consumed_at: float
    goal_after: np.ndarray


@dataclass(frozen=True)
class DroppedAction:
    """An action id that will never be applied, and why (a ``REASON_DESCRIPTIONS`` code)."""

    action_id: ActionId
    reason: str
    at: float


@dataclass(frozen=True)
class LimiterOutput:
    """The end-effector target for one controller period (core form of msg/EndEffectorTarget).

    Attributes:
        stamp: [s] the ``now`` this output was computed for.
        pose: (4, 4) target TCP pose in the base frame.
        gripper: target opening, 0 = closed, 1 = open.
        hold: True when the queue is empty and the target has settled on the goal.
        linear_velocity: (3,) [m/s] velocity at the end of the period.
        angular_velocity: (3,) [rad/s] base-frame angular velocity at the end of the period.
        goal: (4, 4) the goal the target moves toward (previous goal plus every consumed delta).
        goal_gripper: the gripper goal.
        consumed: ids consumed in this step.
        queue_length: actions still pending.
        braking: True while stopping after ``clear()``.
        result: 'Working', 'Finished' or 'Error' (Ruckig's result for this period).
    """

    stamp: float
    pose: np.ndarray
    gripper: float
    hold: bool
    linear_velocity: np.ndarray
    angular_velocity: np.ndarray
    goal: np.ndarray
    goal_gripper: float
    consumed: tuple[ActionId, ...] = ()
    queue_length: int = 0
    braking: bool = False
    result: str = 'Finished'


@dataclass
class _State:
    pose: np.ndarray
    gripper: float
    goal: np.ndarray
    goal_gripper: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(6))
    acceleration: np.ndarray = field(default_factory=lambda: np.zeros(6))
    braking: bool = False


def _is_finite(value: float) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)


class ActionRateLimiter:
    """Turns action chunks into smooth end-effector targets, consuming each delta exactly once.

    Not thread-safe: call ``submit``, ``step``, ``reset`` and ``clear`` from one thread (one
    callback group in the node).
    """

    def __init__(
        self, config: LimiterConfig | None = None, bounds: PoseBounds | None = None
    ) -> None:
        """Create a limiter; it needs ``reset(pose, gripper)`` before it moves.

        Args:
            config: limits and policies; defaults to ``LimiterConfig()``.
            bounds: the safe set every goal is clipped into (the profile's ``safety`` box and
                orientation bounds); None leaves goals unclipped (tests of the pacing alone).
        """
        self.config = config if config is not None else LimiterConfig()
        self.bounds = bounds
        cfg = self.config
        self._otg = Ruckig(6, cfg.period)
        self._inp = InputParameter(6)
        self._out = OutputParameter(6)
        self._inp.max_velocity = [cfg.max_linear_velocity] * 3 + [cfg.max_angular_velocity] * 3
        self._inp.max_acceleration = [cfg.max_linear_acceleration] * 3 + [
            cfg.max_angular_acceleration
        ] * 3
        self._inp.max_jerk = [cfg.max_linear_jerk] * 3 + [cfg.max_angular_jerk] * 3
        self._state: _State | None = None
        self._queue: list[PendingAction] = []
        self._history: deque[ConsumedAction] = deque(maxlen=cfg.history_length)
        self._dropped: deque[DroppedAction] = deque(maxlen=cfg.history_length)
        self._next_chunk_id = 0
        self._last_stamp = -math.inf
        self._last_consumed_due = -math.inf
        self.counters: dict[str, int] = {
            'chunks_accepted': 0,
            'chunks_rejected': 0,
            'actions_consumed': 0,
            'actions_dropped': 0,
            'replans': 0,
            'goals_clipped': 0,
            'reanchors': 0,
        }

    # ------------------------------------------------------------------ views
    @property
    def ready(self) -> bool:
        """Whether ``reset`` has given the limiter a pose."""
        return self._state is not None

    @property
    def pending(self) -> tuple[PendingAction, ...]:
        """Read-only view of the queue, earliest first."""
        return tuple(self._queue)

    @property
    def history(self) -> tuple[ConsumedAction, ...]:
        """The last ``history_length`` consumed actions, oldest first."""
        return tuple(self._history)

    @property
    def dropped(self) -> tuple[DroppedAction, ...]:
        """The last ``history_length`` dropped action ids, oldest first."""
        return tuple(self._dropped)

    @property
    def goal(self) -> np.ndarray:
        """The current goal pose (4, 4).

        Raises:
            NotReadyError: before ``reset``.
        """
        return self._require_state().goal.copy()

    def _require_state(self) -> _State:
        if self._state is None:
            raise NotReadyError(
                'the rate limiter has no pose yet: call reset(pose, gripper) first'
            )
        return self._state

    # ------------------------------------------------------------------ state changes
    def reset(
        self,
        pose: np.ndarray,
        gripper: float,
        *,
        forget_stamps: bool = False,
        now: float = math.nan,
    ) -> None:
        """Jump to ``pose`` (the measured pose) at rest, dropping the queue.

        Args:
            pose: (4, 4) TCP pose in the base frame.
            gripper: opening, 0 = closed, 1 = open (clipped).
            forget_stamps: also forget the newest accepted stamp (e.g.
                after a clock reset); otherwise
                chunks older than those already accepted stay refused.
            now: [s] time, recorded with the dropped ids.

        Raises:
            ValueError: the pose is not a finite (4, 4) rigid
                transform, or the gripper is not finite.
        """
        p = np.array(pose, dtype=float)
        if p.shape != (4, 4) or not np.all(np.isfinite(p)):
            raise ValueError('reset: pose must be a finite (4, 4) matrix')
        rot = p[:3, :3]
        if float(np.max(np.abs(rot.T @ rot - np.eye(3)))) > 1e-6 or np.linalg.det(rot) < 0:
            raise ValueError('reset: pose rotation is not orthonormal')
        if not _is_finite(gripper):
            raise ValueError(f'reset: gripper = {gripper}: must be finite')
        g = float(np.clip(gripper, 0.0, 1.0))
        self._drop_all('DROP_RESET', now)
        p = _snap_anchor(p)
        self._state = _State(pose=p.copy(), gripper=g, goal=p.copy(), goal_gripper=g)
        if forget_stamps:
            self._last_stamp = -math.inf
            self._last_consumed_due = -math.inf

    def reanchor(self, pose: np.ndarray, gripper: float | None = None) -> bool:
        """Restart target and goal, at rest, from ``pose`` (the last safe output), keeping the
        queue and the consumed time slots: the motion the monitor refused is dropped.

        Args:
            pose: (4, 4) the safety monitor's last safe target.
            gripper: its opening; None keeps the current gripper target.

        Returns:
            False (nothing changes) before ``reset`` or for a pose that is not a finite rigid
            transform.
        """
        if self._state is None:
            return False
        p = np.array(pose, dtype=float)
        if p.shape != (4, 4) or not np.all(np.isfinite(p)):
            return False
        rot = p[:3, :3]
        if float(np.max(np.abs(rot.T @ rot - np.eye(3)))) > 1e-6 or np.linalg.det(rot) < 0:
            return False
        state = self._state
        p = _snap_anchor(p)
        state.pose = p.copy()
        state.goal = p.copy()
        state.velocity = np.zeros(6)
        state.acceleration = np.zeros(6)
        state.braking = False
        if gripper is not None and _is_finite(gripper):
            g = float(np.clip(gripper, 0.0, 1.0))
            state.gripper = g
            state.goal_gripper = g
        self.counters['reanchors'] += 1
        return True

    def clear(self, now: float = math.nan) -> None:
        """Drop every pending action and brake to a stop within the
        limits (empty instruction, e-stop).

        Args:
            now: [s] time, recorded with the dropped ids.
        """
        self._drop_all('DROP_CLEARED', now)
        if self._state is None:
            return
        state = self._state
        state.goal_gripper = state.gripper
        moving = np.any(np.abs(state.velocity) > 0.0) or np.any(np.abs(state.acceleration) > 0.0)
        if moving:
            state.braking = True
        else:
            state.goal = state.pose.copy()

    def _drop_all(self, reason: str, now: float) -> None:
        for action in self._queue:
            self._record_drop(action.sources, reason, now)
        self._queue = []

    def _record_drop(self, ids: tuple[ActionId, ...], reason: str, now: float) -> None:
        for action_id in ids:
            self._dropped.append(DroppedAction(action_id, reason, now))
            self.counters['actions_dropped'] += 1

    # ------------------------------------------------------------------ submit
    def _reject(self, reason: str, message: str, chunk_id: int = -1) -> SubmitResult:
        self.counters['chunks_rejected'] += 1
        return SubmitResult(False, reason, message, chunk_id)

    def submit(self, chunk: ActionChunkData, now: float) -> SubmitResult:
        """Queue a chunk's actions (validated, clipped, merged by the configured policy).

        Never raises for bad data: a bad chunk is refused with a reason code and a sentence.

        Args:
            chunk: the chunk.
            now: [s] current time (same clock as ``chunk.stamp``).

        Returns:
            A ``SubmitResult``.
        """
        refused = self._check_times(chunk, now)
        if refused is not None:
            return refused
        actions = self._parse_actions(chunk)
        if isinstance(actions, SubmitResult):
            return actions
        semantics = self._lookup_semantics(chunk)
        if isinstance(semantics, SubmitResult):
            return semantics
        refused = self._check_order(chunk, now)
        if refused is not None:
            return refused
        space, convention = semantics
        chunk_id = self._next_chunk_id
        self._next_chunk_id += 1
        actions, clipped = self._clip_to_space(actions, space)
        new, skipped_ids = self._schedule(chunk, chunk_id, actions, space, convention)
        queue, dropped, overlapped = self._merge(new, float(chunk.dt))
        if len(queue) > self.config.max_queue_length:
            self._next_chunk_id -= 1
            return self._reject(
                'REJECT_QUEUE_FULL',
                f'the queue would hold {len(queue)} actions, '
                f'above max_queue_length '
                f'{self.config.max_queue_length}',
            )
        self._last_stamp = float(chunk.stamp)
        self._record_drop(tuple(skipped_ids), 'SKIP_ALREADY_EXECUTED', now)
        for reason, ids in dropped:
            self._record_drop(ids, reason, now)
        self._queue = queue
        return self._queued_result(
            chunk_id,
            actions.shape[0],
            len(new) - overlapped,
            len(skipped_ids) + overlapped,
            clipped,
        )

    # ------------------------------------------------------------------ submit() steps
    def _check_times(self, chunk: ActionChunkData, now: float) -> SubmitResult | None:
        """A pose to start from, and finite times: ``now``, the stamp, a positive ``dt``."""
        if self._state is None:
            return self._reject('REJECT_NOT_READY', REASON_DESCRIPTIONS['REJECT_NOT_READY'])
        if not _is_finite(now):
            return self._reject('REJECT_INVALID_CHUNK', f'now = {now} is not a finite time')
        if not _is_finite(chunk.stamp):
            return self._reject('REJECT_NON_FINITE', f'stamp = {chunk.stamp} is not finite')
        if not _is_finite(chunk.dt) or chunk.dt <= 0.0:
            return self._reject(
                'REJECT_INVALID_CHUNK', f'dt = {chunk.dt} s: must be finite and > 0'
            )
        return None

    def _parse_actions(self, chunk: ActionChunkData) -> np.ndarray | SubmitResult:
        """The actions as a finite (N >= 1, 7) float array (one 7-vector is one row)."""
        try:
            actions = np.array(chunk.actions, dtype=float)
        except (TypeError, ValueError):
            return self._reject('REJECT_INVALID_CHUNK', 'actions are not a numeric array')
        if actions.ndim == 1 and actions.size == ACTION_DIM:
            actions = actions.reshape(1, ACTION_DIM)
        if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or actions.shape[0] < 1:
            return self._reject(
                'REJECT_INVALID_CHUNK',
                f'actions have shape {actions.shape}, expected (N >= 1, {ACTION_DIM})',
            )
        bad = np.argwhere(~np.isfinite(actions))
        if bad.size:
            row, col = (int(x) for x in bad[0])
            return self._reject(
                'REJECT_NON_FINITE', f'action {row} value {col} is {actions[row, col]}'
            )
        return actions

    def _lookup_semantics(
        self, chunk: ActionChunkData
    ) -> tuple[ActionSpace, GripperConvention] | SubmitResult:
        """The registered action space and gripper convention the chunk names."""
        try:
            space = get_action_space(chunk.action_space)
        except UnknownNameError as error:
            return self._reject('REJECT_UNKNOWN_ACTION_SPACE', str(error))
        try:
            convention = GripperConvention(int(chunk.gripper_convention))
        except (TypeError, ValueError):
            return self._reject(
                'REJECT_UNKNOWN_GRIPPER_CONVENTION',
                f'gripper_convention = {chunk.gripper_convention!r} is not 0, 1 or 2',
            )
        return space, convention

    def _check_order(self, chunk: ActionChunkData, now: float) -> SubmitResult | None:
        """Not stale, not from the future, newer than the newest accepted chunk."""
        cfg = self.config
        age = now - chunk.stamp
        if age > cfg.max_chunk_age:
            return self._reject(
                'DROP_STALE_CHUNK',
                f'the chunk is {age:.3f} s old, above max_chunk_age {cfg.max_chunk_age:.3f} s',
            )
        if -age > cfg.max_chunk_age:
            return self._reject(
                'REJECT_FUTURE_STAMP', f'the chunk is stamped {-age:.3f} s in the future'
            )
        if chunk.stamp < self._last_stamp:
            return self._reject(
                'DROP_OUT_OF_ORDER',
                f'stamp {chunk.stamp:.6f} s is older than the newest accepted '
                f'{self._last_stamp:.6f} s',
            )
        if chunk.stamp == self._last_stamp:
            return self._reject(
                'DROP_DUPLICATE_STAMP', f'a chunk stamped {chunk.stamp:.6f} s was already accepted'
            )
        return None

    def _clip_to_space(self, actions: np.ndarray, space: ActionSpace) -> tuple[np.ndarray, int]:
        """Each raw action clipped to the action space's bounds (``clip_actions``), and how many
        were changed."""
        if not self.config.clip_actions:
            return actions, 0
        limited = actions.copy()
        clipped = 0
        for j in range(actions.shape[0]):
            limited[j] = space.clip(actions[j])
            if np.any(limited[j] != actions[j]):
                clipped += 1
        return limited, clipped

    def _schedule(
        self,
        chunk: ActionChunkData,
        chunk_id: int,
        actions: np.ndarray,
        space: ActionSpace,
        convention: GripperConvention,
    ) -> tuple[list[PendingAction], list[ActionId]]:
        """Metric deltas due at ``stamp + latency_compensation + j dt``; the ids of those for an
        already executed time slot are returned apart (skipped)."""
        dt = float(chunk.dt)
        start = float(chunk.stamp) + self.config.latency_compensation
        new: list[PendingAction] = []
        skipped_ids: list[ActionId] = []
        for j in range(actions.shape[0]):
            raw = actions[j]
            due = start + j * dt
            if due < self._last_consumed_due + SLOT_FRACTION * dt:
                skipped_ids.append((chunk_id, j))
                continue
            delta = np.concatenate(
                [raw[:3] * space.translation_scale, raw[3:6] * space.rotation_scale]
            )
            opening = gripper_to_opening(raw[6], convention)
            new.append(PendingAction(due, delta, opening, ((chunk_id, j),), dt))
        return new, skipped_ids

    def _queued_result(
        self, chunk_id: int, rows: int, queued: int, skipped: int, clipped: int
    ) -> SubmitResult:
        """ACCEPTED when at least one action was queued, else DROP_NOTHING_NEW (both counted)."""
        if queued <= 0:
            self.counters['chunks_rejected'] += 1
            return SubmitResult(
                False,
                'DROP_NOTHING_NEW',
                f'all {rows} actions were for time slots already executed or planned',
                chunk_id,
                0,
                skipped,
                clipped,
            )
        self.counters['chunks_accepted'] += 1
        return SubmitResult(
            True,
            'ACCEPTED',
            f'queued {queued} of {rows} actions '
            f'({self.config.merge_policy}); queue holds {len(self._queue)}',
            chunk_id,
            queued,
            skipped,
            clipped,
        )

    def _merge(
        self, new: list[PendingAction], dt: float
    ) -> tuple[list[PendingAction], list[_Drop], int]:
        """Combine the pending queue with new actions by the merge policy; returns (queue,
        dropped, new ones not queued)."""
        old = self._queue
        if not new:
            return list(old), [], 0
        if not old:
            return list(new), [], 0
        half = 0.5 * dt
        if self.config.merge_policy == 'latest_only':
            return list(new), [('DROP_REPLACED', action.sources) for action in old], 0
        if self.config.merge_policy == 'append':
            return self._merge_append(old, new, half)
        return self._merge_weighted_average(old, new, half)

    @staticmethod
    def _merge_append(
        old: list[PendingAction], new: list[PendingAction], half: float
    ) -> tuple[list[PendingAction], list[_Drop], int]:
        """append: keep the pending plan; queue only the new actions after its end."""
        last_due = old[-1].due
        kept = [a for a in new if a.due >= last_due + half]
        dropped = [('DROP_OVERLAP', a.sources) for a in new if a.due < last_due + half]
        return list(old) + kept, dropped, len(new) - len(kept)

    def _merge_weighted_average(
        self, old: list[PendingAction], new: list[PendingAction], half: float
    ) -> tuple[list[PendingAction], list[_Drop], int]:
        """weighted_average: a new action overlapping a pending one becomes ``w_old * old +
        w_new * new``; pending actions before the new chunk stay, later ones are replaced."""
        cfg = self.config
        first_due = new[0].due
        queue = [a for a in old if a.due < first_due - half]
        used: set[int] = set()
        for action in new:
            match = next(
                (
                    k
                    for k, candidate in enumerate(old)
                    if k not in used and abs(candidate.due - action.due) < half
                ),
                None,
            )
            if match is None:
                queue.append(action)
                continue
            used.add(match)
            prev = old[match]
            w_old = cfg.merge_weight_old
            w_new = cfg.merge_weight_new
            queue.append(
                PendingAction(
                    due=action.due,
                    delta=w_old * prev.delta + w_new * action.delta,
                    gripper=float(
                        np.clip(w_old * prev.gripper + w_new * action.gripper, 0.0, 1.0)
                    ),
                    sources=prev.sources + action.sources,
                    dt=action.dt,
                )
            )
        dropped = [
            ('DROP_REPLACED', a.sources)
            for k, a in enumerate(old)
            if k not in used and not a.due < first_due - half
        ]
        queue.sort(key=lambda a: a.due)
        return queue, dropped, 0

    # ------------------------------------------------------------------ step
    def step(self, now: float) -> LimiterOutput:
        """Advance one controller period: consume due actions, move the target toward the goal.

        Args:
            now: [s] current time (decides which actions are due).

        Returns:
            The target for this period.

        Raises:
            NotReadyError: before ``reset``.
        """
        state = self._require_state()
        consumed: list[ActionId] = []
        if not state.braking and math.isfinite(now):
            while self._queue and self._queue[0].due <= now + _EPS_TIME:
                action = self._queue.pop(0)
                goal = _apply_metric_delta(state.goal, action.delta)
                if self.bounds is not None:
                    clipped = self.bounds.clip(goal, anchor=state.goal)
                    if not np.allclose(clipped, goal, rtol=0.0, atol=1e-12):
                        self.counters['goals_clipped'] += 1
                    goal = clipped
                state.goal = goal
                state.goal_gripper = action.gripper
                self._last_consumed_due = max(self._last_consumed_due, action.due)
                self._history.append(ConsumedAction(action, now, state.goal.copy()))
                self.counters['actions_consumed'] += len(action.sources)
                consumed.extend(action.sources)

        result_name = self._move(state)
        cfg = self.config
        max_gripper_step = cfg.max_gripper_velocity * cfg.period
        gripper_error = state.goal_gripper - state.gripper
        state.gripper += float(np.clip(gripper_error, -max_gripper_step, max_gripper_step))
        settled = (
            result_name == 'Finished' and not state.braking and state.gripper == state.goal_gripper
        )
        return LimiterOutput(
            stamp=now,
            pose=state.pose.copy(),
            gripper=state.gripper,
            hold=settled and not self._queue,
            linear_velocity=state.velocity[:3].copy(),
            angular_velocity=state.velocity[3:].copy(),
            goal=state.goal.copy(),
            goal_gripper=state.goal_gripper,
            consumed=tuple(consumed),
            queue_length=len(self._queue),
            braking=state.braking,
            result=result_name,
        )

    def _plan(self) -> Result | None:
        """Ruckig update with the configured limits, retried with marginally lower limits."""
        cfg = self.config
        inp = self._inp
        for accel_scale, jerk_scale in _LIMIT_SCALES:
            inp.max_acceleration = [cfg.max_linear_acceleration * accel_scale] * 3 + [
                cfg.max_angular_acceleration * accel_scale
            ] * 3
            inp.max_jerk = [cfg.max_linear_jerk * jerk_scale] * 3 + [
                cfg.max_angular_jerk * jerk_scale
            ] * 3
            try:
                return self._otg.update(inp, self._out)
            except RuckigError:
                self.counters['replans'] += 1
        return None

    def _move(self, state: _State) -> str:
        inp = self._inp
        inp.current_position = list(state.pose[:3, 3]) + [0.0, 0.0, 0.0]
        inp.current_velocity = list(state.velocity)
        inp.current_acceleration = list(state.acceleration)
        if state.braking:
            inp.control_interface = ControlInterface.Velocity
            inp.target_velocity = [0.0] * 6
            inp.target_acceleration = [0.0] * 6
        else:
            inp.control_interface = ControlInterface.Position
            rotvec = Rotation.from_matrix(state.goal[:3, :3] @ state.pose[:3, :3].T).as_rotvec()
            inp.target_position = list(state.goal[:3, 3]) + list(rotvec)
            inp.target_velocity = [0.0] * 6
            inp.target_acceleration = [0.0] * 6
        result = self._plan()
        if result not in (Result.Working, Result.Finished):
            # Ruckig refused the input (cannot happen with validated limits and finite state):
            # stand
            # still rather than move on a bad plan.
            state.velocity = np.zeros(6)
            state.acceleration = np.zeros(6)
            return 'Error'
        new_position = np.array(self._out.new_position)
        pose = np.eye(4)
        pose[:3, 3] = new_position[:3]
        pose[:3, :3] = Rotation.from_rotvec(new_position[3:]).as_matrix() @ state.pose[:3, :3]
        state.velocity = np.array(self._out.new_velocity)
        state.acceleration = np.array(self._out.new_acceleration)
        if state.braking:
            if result == Result.Finished:
                state.braking = False
                state.velocity = np.zeros(6)
                state.acceleration = np.zeros(6)
                state.goal = pose.copy()
        elif result == Result.Finished:
            pose = state.goal.copy()
            state.velocity = np.zeros(6)
            state.acceleration = np.zeros(6)
        state.pose = pose
        return 'Finished' if result == Result.Finished else 'Working'


def _snap_anchor(pose: np.ndarray) -> np.ndarray:
    """An anchor on a grid of ANCHOR_GRID (translation [m] and rotation-matrix entries, then
    re-orthonormalised).

    Why: Ruckig's jerk-limited solution is not continuous in its input (a profile boundary, or
    which axis sets the synchronised duration), and two anchors 1e-14 m apart (the simulated
    arm measured one control tick earlier or later, as it settles) gave targets up to 2.6 mm
    apart a few periods later. A nanometre changes nothing physical; on the grid, such anchors
    are the same anchor, so a simulated episode replays exactly.
    """
    out = np.eye(4)
    out[:3, 3] = np.round(pose[:3, 3] / ANCHOR_GRID) * ANCHOR_GRID
    snapped = np.round(pose[:3, :3] / ANCHOR_GRID) * ANCHOR_GRID
    out[:3, :3] = Rotation.from_matrix(snapped).as_matrix()
    return out


def _apply_metric_delta(goal: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """bridge_orig composition with a metric delta (every registered
    space is a scaled Bridge delta)."""
    result = np.eye(4)
    result[:3, :3] = Rotation.from_euler('xyz', delta[3:6]).as_matrix() @ goal[:3, :3]
    result[:3, 3] = goal[:3, 3] + delta[:3]
    return result
