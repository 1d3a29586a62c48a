"""The safety monitor: the last gate between the rate limiter and the arm adapters.

States (numbers of msg/SafetyStatus.msg):

- OK: the target passes unchanged.
- LIMITED: the target passes after clipping (``mode = 'clip'``).
- HOLD: the arm holds the last safe target; a watchdog fired or the target was rejected
  (non-finite, a limit in ``mode = 'reject'``, an IK failure or joint limit). Clears by itself on
  the next good target.
- ESTOP: latched by ``on_estop(True)``; only hold passes until ``reset`` (which refuses while the
  e-stop is still engaged).
- FAULT: latched internal error: the ``ik`` callable raised or returned garbage, ``now`` was not
  finite, or ``ik_failures_before_fault`` consecutive IK failures. Needs ``reset``.

IK failure and joint-limit violation go to HOLD, not FAULT (the Bridge robot code's "no IK
solution, do nothing"), because a target just outside the reachable set is a normal event for a
learned policy; a persistent failure can be escalated to FAULT with ``ik_failures_before_fault``.

Limits per unit of time: a target that arrives ``t`` seconds after the previous passed or clipped
output may move at most ``min(t, period) / period`` times the per-period step (translation,
rotation, gripper), so N targets within one period move the arm no further than one period's
step; a re-sent hold uses no motion and does not restart the clock.

The safe set is anchored (``PoseBounds.clip``): a reference pose outside the box or the
orientation bounds (an arm that starts outside) is held where it is, never pulled onto the box in
one jump, and only motion back toward the set passes (reason ``CLIP_TOWARD_WORKSPACE``).

Invariants (tested with hypothesis): every output pose is inside the safe set, or no further
outside it on any axis than the previous output; no output step larger than the per-time limits
relative to the previous output; non-finite never passes; after an e-stop nothing but hold passes
until reset; ESTOP and FAULT latch until reset. Every candidate is checked once more against these
invariants just before it is returned; a failure there becomes a hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import enum
import math
from typing import Any, NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from openvla_ros.control.config import SafetyConfig

__all__ = [
    'REASON_DESCRIPTIONS',
    'SafetyDecision',
    'SafetyMonitor',
    'SafetyState',
    'SafetyStatusData',
]


class SafetyState(enum.IntEnum):
    """Monitor state; the numbers are msg/SafetyStatus.msg's STATE_* constants."""

    OK = 0
    LIMITED = 1
    HOLD = 2
    ESTOP = 3
    FAULT = 4


# Every reason code, with the sentence that explains it (the decision's messages add the numbers).
REASON_DESCRIPTIONS: dict[str, str] = {
    'REJECT_NON_FINITE': 'The target contains a NaN or infinite value; holding the last target.',
    'REJECT_INVALID_POSE': 'The target is not a (4, 4) rigid transform; holding the last target.',
    'REJECT_OUTSIDE_WORKSPACE': 'The target is outside the workspace box (reject mode).',
    'REJECT_STEP_TRANSLATION': 'The target moves further than max_step_translation (reject mode).',
    'REJECT_STEP_ROTATION': 'The target turns further than max_step_rotation (reject mode).',
    'REJECT_GRIPPER_RATE': 'The gripper changes faster than max_step_gripper (reject mode).',
    'REJECT_ORIENTATION_LIMIT': 'The target orientation is outside the orientation bounds.',
    'REJECT_FINAL_CHECK': 'The filtered target failed the final invariant check; holding.',
    'CLIP_TO_WORKSPACE': 'The target was outside the workspace box and was clipped onto it.',
    'CLIP_STEP_TRANSLATION': 'The target moved beyond max_step_translation and was shortened.',
    'CLIP_STEP_ROTATION': 'The target turned further than max_step_rotation and was shortened.',
    'CLIP_GRIPPER_RATE': 'The gripper changed faster than max_step_gripper and was slowed.',
    'CLIP_GRIPPER_RANGE': 'The gripper opening was outside [0, 1] and was clipped.',
    'CLIP_ORIENTATION_LIMIT': 'The target orientation was outside its bounds and was clipped.',
    'HALT_FOR_NO_REFERENCE': 'No reference pose yet (no joint state with a pose); holding.',
    'HALT_FOR_STALE_CAMERA': 'The camera image is too old (or missing); holding.',
    'HALT_FOR_STALE_JOINT_STATES': 'The joint states are too old (or missing); holding.',
    'HALT_FOR_STALE_COMMANDS': 'No command arrived within command_timeout; holding.',
    'HALT_FOR_POLICY_FAULT': 'The policy reports a fault (e.g. an unreachable server); holding.',
    'HALT_FOR_STALE_POLICY': (
        'An instruction is active but no chunk and no policy status arrived within '
        'policy_timeout (the policy crashed or hangs); holding.'
    ),
    'HALT_FOR_TRACKING_ERROR': (
        'The measured pose is further from the command than max_tracking_error (a blocked or '
        'lagging arm); the command re-anchors on the measured pose and holds.'
    ),
    'CLIP_TOWARD_WORKSPACE': (
        'The arm is outside the safe set; only motion back toward it passes.'
    ),
    'HALT_FOR_IK_FAILURE': 'Inverse kinematics found no solution for the target; holding.',
    'HALT_FOR_JOINT_LIMIT': 'The target needs a joint beyond its position limit; holding.',
    'HALT_FOR_JOINT_VELOCITY_LIMIT': 'The target needs a joint faster than its limit; holding.',
    'ESTOP_ENGAGED': 'The e-stop is engaged; only hold passes.',
    'ESTOP_LATCHED': 'The e-stop was engaged; only hold passes until reset.',
    'FAULT_IK_EXCEPTION': 'The IK callable raised an exception; latched until reset.',
    'FAULT_IK_INVALID_RESULT': 'The IK callable returned an invalid result; latched until reset.',
    'FAULT_IK_REPEATED_FAILURE': 'IK failed ik_failures_before_fault times in a row; latched.',
    'FAULT_INVALID_TIME': 'The monitor was called with a non-finite time; latched until reset.',
}

_IK_REASON_TO_HALT = {
    'IK_JOINT_LIMIT': 'HALT_FOR_JOINT_LIMIT',
    'IK_VELOCITY_LIMIT': 'HALT_FOR_JOINT_VELOCITY_LIMIT',
}

# Slack of the final invariant check (floating-point rounding of clipped values).
_EPS_POSITION = 1e-9
_EPS_ANGLE = 1e-9


@dataclass(frozen=True)
class SafetyDecision:
    """What may go to the arm this period (core form of EndEffectorTarget plus the status).

    Attributes:
        stamp: [s] the ``now`` of the call.
        pose: (4, 4) pose that may pass; the hold pose when ``hold``; None only before any
            reference.
        gripper: opening that may pass (0 = closed, 1 = open); NaN only before any reference.
        hold: True when the arm must hold ``pose`` (anything but a passed or clipped target).
        state: the monitor state after this call.
        reasons: reason codes (empty exactly when state is OK).
        messages: one sentence per reason, with the numbers.
        outcome: 'passed', 'clipped', 'rejected' (a command replaced by hold) or 'held' (tick()).
        joint_positions: (n,) IK solution for ``pose`` when an ``ik`` callable was given, else
            None.
    """

    stamp: float
    pose: np.ndarray | None
    gripper: float
    hold: bool
    state: SafetyState
    reasons: tuple[str, ...]
    messages: tuple[str, ...]
    outcome: str
    joint_positions: np.ndarray | None = None


@dataclass(frozen=True)
class SafetyStatusData:
    """Core form of msg/SafetyStatus."""

    stamp: float
    state: SafetyState
    reasons: tuple[str, ...]
    messages: tuple[str, ...]
    estop_latched: bool
    passed: int
    clipped: int
    rejected: int
    image_age: float
    joint_state_age: float
    command_age: float


class _Latch(NamedTuple):
    """What a set latch holds with: ESTOP or FAULT, its reason codes and their sentences."""

    state: SafetyState
    reasons: list[str]
    messages: list[str]


@dataclass
class _Target:
    """One target on its way through ``filter``'s checks; a clip shortens it and says why."""

    now: float  # the call's time, as given
    position: np.ndarray  # (3,) [m]
    rot: np.ndarray  # (3, 3)
    gripper: float  # opening, 0 = closed, 1 = open
    prev: np.ndarray  # (4, 4) the hold pose (last safe output) every limit is anchored on
    scale: float  # fraction of one period's step allowed at ``now``
    ik: Callable[[np.ndarray], Any] | None
    clips: list[str] = field(default_factory=list)  # CLIP_* codes, in check order
    notes: list[str] = field(default_factory=list)  # one sentence per clip
    q: np.ndarray | None = None  # joints of the pose once the IK check solved it

    def clip(self, code: str, note: str) -> None:
        self.clips.append(code)
        self.notes.append(note)

    def pose(self) -> np.ndarray:
        """(4, 4) a new array of the target as clipped so far."""
        pose = np.eye(4)
        pose[:3, :3] = self.rot
        pose[:3, 3] = self.position
        return pose


def _non_finite(pose: np.ndarray, gripper: Any) -> str | None:
    """Why the pose or the gripper is not finite numbers, or None."""
    if not np.all(np.isfinite(pose)):
        return 'the target pose contains a NaN or infinite value'
    if not isinstance(gripper, (int, float, np.floating, np.integer)):
        return f'the gripper value {gripper!r} is not a number'
    if not math.isfinite(float(gripper)):
        return f'the gripper value is {gripper}'
    return None


def _finite_pose(pose: Any) -> np.ndarray | None:
    try:
        arr = np.array(pose, dtype=float)
    except (TypeError, ValueError):
        return None
    if arr.shape != (4, 4):
        return None
    return arr


def _angle_between(r_a: np.ndarray, r_b: np.ndarray) -> float:
    return float(np.linalg.norm(Rotation.from_matrix(r_b @ r_a.T).as_rotvec()))


class SafetyMonitor:
    """Checks each end-effector target against the limits and watchdogs; latches e-stop and faults.

    Not thread-safe: call it from one thread (one callback group in the node).
    """

    def __init__(self, config: SafetyConfig) -> None:
        """Create a monitor with no reference pose (it holds until one is given).

        Args:
            config: limits, watchdogs and mode.
        """
        self.config = config
        self._nominal = Rotation.from_euler('xyz', config.orientation_nominal_rpy).as_matrix()
        self._bounds = config.bounds
        self._hold_pose: np.ndarray | None = None
        self._last_output_time = math.nan
        self._measured_pose: np.ndarray | None = None
        self._measured_gripper = math.nan
        self._instruction_active = False
        self._instruction_time = math.nan
        self._policy_seen = math.nan
        self._hold_gripper = math.nan
        self._hold_q: np.ndarray | None = None
        self._image_stamp = math.nan
        self._joint_stamp = math.nan
        self._command_stamp = math.nan
        self._estop_engaged = False
        self._policy_fault: str | None = None
        self._estop_latched = False
        self._fault_reasons: tuple[str, ...] = ()
        self._fault_messages: tuple[str, ...] = ()
        self._ik_failures = 0
        self._last_state = SafetyState.HOLD
        self._last_reasons: tuple[str, ...] = ('HALT_FOR_NO_REFERENCE',)
        self._last_messages: tuple[str, ...] = (REASON_DESCRIPTIONS['HALT_FOR_NO_REFERENCE'],)
        self.passed = 0
        self.clipped = 0
        self.rejected = 0

    # ------------------------------------------------------------------ inputs
    @property
    def hold_pose(self) -> np.ndarray | None:
        """The last safe output pose (what a hold holds), or None before any reference."""
        return None if self._hold_pose is None else self._hold_pose.copy()

    @property
    def hold_q(self) -> np.ndarray | None:
        """Joints of the hold pose (the last output) when known, else None (e.g. just re-anchored
        on the measured pose): the IK seed and joint-velocity reference of the next target."""
        return None if self._hold_q is None else self._hold_q.copy()

    @property
    def estop_latched(self) -> bool:
        """Whether the e-stop latch is set."""
        return self._estop_latched

    @property
    def state(self) -> SafetyState:
        """The state after the last call."""
        return self._last_state

    def on_image(self, stamp: float) -> None:
        """Record a camera image's stamp [s] (non-finite stamps are
        ignored, so the watchdog fires)."""
        if isinstance(stamp, (int, float)) and math.isfinite(stamp):
            self._image_stamp = float(stamp)

    def on_joint_state(
        self,
        q: np.ndarray | None,
        stamp: float,
        *,
        pose: np.ndarray | None = None,
        gripper: float | None = None,
    ) -> None:
        """Record a joint state; the first valid ``pose`` becomes the reference (hold) pose.

        Args:
            q: (n,) joint positions [rad] (kept as the hold solution before any IK ran), or None.
            stamp: [s] the joint state's stamp; non-finite stamps are ignored.
            pose: (4, 4) measured TCP pose (FK of ``q``): the reference while there is none
                yet, and the measured side of the tracking-error bound.
            gripper: measured opening (0 = closed, 1 = open): the reference gripper, so that an
                object held at start-up or through a reset is kept; None (no finger joint in the
                joint states) falls back to 1 (open).
        """
        if not (isinstance(stamp, (int, float)) and math.isfinite(stamp)):
            return
        if q is not None:
            q_arr = np.array(q, dtype=float)
            if not np.all(np.isfinite(q_arr)):
                return
        self._joint_stamp = float(stamp)
        measured = _finite_pose(pose) if pose is not None else None
        if measured is not None and np.all(np.isfinite(measured)) and self._is_rigid(measured):
            self._measured_pose = measured
        if gripper is not None and math.isfinite(float(gripper)):
            self._measured_gripper = float(np.clip(gripper, 0.0, 1.0))
        if self._hold_pose is None and pose is not None:
            reference_gripper = (
                self._measured_gripper if math.isfinite(self._measured_gripper) else 1.0
            )
            self.set_reference(pose, reference_gripper)
            if q is not None:
                self._hold_q = np.array(q, dtype=float)

    @property
    def measured_gripper(self) -> float:
        """The last measured opening, NaN if none (the gripper a reset keeps)."""
        return self._measured_gripper

    def on_instruction(self, text: str, now: float) -> None:
        """Record the instruction: while one is active the policy watchdog runs.

        Args:
            text: the instruction; empty (or blank) = idle, which never trips the watchdog.
            now: [s] receipt time (the policy gets ``policy_timeout`` from here to answer).
        """
        self._instruction_active = bool(str(text).strip())
        if isinstance(now, (int, float)) and math.isfinite(now):
            self._instruction_time = float(now)

    def on_policy_alive(self, now: float) -> None:
        """Record a sign of life of the policy (a chunk or a policy status), at receipt time."""
        if isinstance(now, (int, float)) and math.isfinite(now):
            self._policy_seen = float(now)

    def set_reference(self, pose: np.ndarray, gripper: float) -> bool:
        """Re-anchor the hold pose (startup) on the measured pose, as it is: a pose outside the
        safe set is held there (no jump onto the box); targets may then only move back toward it.

        Args:
            pose: (4, 4) measured TCP pose.
            gripper: measured opening (clipped to [0, 1]).

        Returns:
            False (and nothing changes) when the pose or gripper is not
            finite or not a rigid transform.
        """
        arr = _finite_pose(pose)
        if arr is None:
            return False
        if not np.all(np.isfinite(arr)):
            return False
        if not self._is_rigid(arr):
            return False
        if not (isinstance(gripper, (int, float)) and math.isfinite(gripper)):
            return False
        self._hold_pose = arr
        self._hold_gripper = float(np.clip(gripper, 0.0, 1.0))
        self._hold_q = None
        self._last_output_time = math.nan
        return True

    def on_policy(self, ok: bool, message: str = '') -> None:
        """Record the policy's health: while it reports a fault (a dead policy server, a model
        that keeps failing), every period holds; it clears by itself when the policy recovers.

        Args:
            ok: False while the policy is faulty.
            message: why (shown in the status).
        """
        self._policy_fault = None if ok else (message or 'the policy reports a fault')

    def on_estop(self, engaged: bool, now: float) -> None:
        """Record the e-stop input; engaging latches ESTOP until ``reset``.

        Args:
            engaged: the e-stop signal.
            now: [s] time of the signal.
        """
        self._estop_engaged = bool(engaged)
        if self._estop_engaged:
            self._estop_latched = True
            self._last_state = SafetyState.ESTOP
            self._last_reasons = ('ESTOP_LATCHED',)
            self._last_messages = (
                f'e-stop engaged at t = {now:.3f} s; only hold passes until reset',
            )

    def reset(self, now: float) -> tuple[bool, str]:
        """Clear the ESTOP and FAULT latches (the ~/reset service).

        Args:
            now: [s] time of the request.

        Returns:
            (ok, message): refused while the e-stop is still engaged.
        """
        if self._estop_engaged:
            return False, 'reset refused: the e-stop is still engaged; release it first'
        if not (isinstance(now, (int, float)) and math.isfinite(now)):
            return False, f'reset refused: now = {now} is not a finite time'
        was = []
        if self._estop_latched:
            was.append('ESTOP')
        if self._fault_reasons:
            was.append('FAULT (' + ', '.join(self._fault_reasons) + ')')
        self._estop_latched = False
        self._fault_reasons = ()
        if math.isfinite(self._measured_gripper):
            # keep the world as it is: an object held through the e-stop stays held
            self._hold_gripper = self._measured_gripper
        self._fault_messages = ()
        self._ik_failures = 0
        self._command_stamp = float(now)
        self._last_state = SafetyState.HOLD
        self._last_reasons = ('HALT_FOR_STALE_COMMANDS',)
        self._last_messages = ('reset: waiting for the next command',)
        if not was:
            return True, 'reset: nothing was latched'
        return True, f'reset at t = {now:.3f} s cleared ' + ' and '.join(was)

    # ------------------------------------------------------------------ status
    def _ages(self, now: float) -> tuple[float, float, float]:
        return (now - self._image_stamp, now - self._joint_stamp, now - self._command_stamp)

    def status(self, now: float) -> SafetyStatusData:
        """The status message content for this period (state of the last call, ages at ``now``)."""
        image_age, joint_age, command_age = self._ages(now)
        return SafetyStatusData(
            stamp=now,
            state=self._last_state,
            reasons=self._last_reasons,
            messages=self._last_messages,
            estop_latched=self._estop_latched,
            passed=self.passed,
            clipped=self.clipped,
            rejected=self.rejected,
            image_age=image_age,
            joint_state_age=joint_age,
            command_age=command_age,
        )

    # ------------------------------------------------------------------ decisions
    def _latch_fault(self, reason: str, message: str) -> None:
        if reason not in self._fault_reasons:
            self._fault_reasons = self._fault_reasons + (reason,)
            self._fault_messages = self._fault_messages + (message,)

    def _hold(
        self, now: float, state: SafetyState, reasons: list[str], messages: list[str], outcome: str
    ) -> SafetyDecision:
        if outcome == 'rejected':
            self.rejected += 1
        self._last_state = state
        self._last_reasons = tuple(reasons)
        self._last_messages = tuple(messages)
        pose = None if self._hold_pose is None else self._hold_pose.copy()
        q = None if self._hold_q is None else self._hold_q.copy()
        return SafetyDecision(
            now, pose, self._hold_gripper, True, state, tuple(reasons), tuple(messages), outcome, q
        )

    def _reject(self, now: float, reason: str, message: str) -> SafetyDecision:
        """Hold instead of the target: one reason, state HOLD (clears on the next good one)."""
        return self._hold(now, SafetyState.HOLD, [reason], [message], 'rejected')

    def _latch(self) -> _Latch:
        """The latch in force, ESTOP before FAULT; only while one is set."""
        if self._estop_latched:
            reason = 'ESTOP_ENGAGED' if self._estop_engaged else 'ESTOP_LATCHED'
            return _Latch(SafetyState.ESTOP, [reason], [REASON_DESCRIPTIONS[reason]])
        return _Latch(SafetyState.FAULT, list(self._fault_reasons), list(self._fault_messages))

    def _hold_if_latched(self, now: float, outcome: str) -> SafetyDecision | None:
        """The hold while ESTOP or FAULT is latched, else None."""
        if not (self._estop_latched or self._fault_reasons):
            return None
        latch = self._latch()
        return self._hold(now, latch.state, latch.reasons, latch.messages, outcome)

    def _fault_hold(self, now: float, reason: str, message: str) -> SafetyDecision:
        """Latch FAULT with ``reason`` and hold with the latch now in force."""
        self._latch_fault(reason, message)
        latch = self._latch()
        return self._hold(now, latch.state, latch.reasons, latch.messages, 'rejected')

    def _no_reference(self, now: float, outcome: str) -> SafetyDecision:
        return self._hold(
            now,
            SafetyState.HOLD,
            ['HALT_FOR_NO_REFERENCE'],
            [REASON_DESCRIPTIONS['HALT_FOR_NO_REFERENCE']],
            outcome,
        )

    def _watchdogs(self, now: float, *, include_commands: bool) -> tuple[list[str], list[str]]:
        cfg = self.config
        reasons: list[str] = []
        messages: list[str] = []
        image_age, joint_age, command_age = self._ages(now)
        checks = [
            ('HALT_FOR_STALE_CAMERA', 'camera image', image_age, cfg.image_timeout),
            ('HALT_FOR_STALE_JOINT_STATES', 'joint state', joint_age, cfg.joint_state_timeout),
        ]
        if include_commands:
            checks.append(('HALT_FOR_STALE_COMMANDS', 'command', command_age, cfg.command_timeout))
        for code, what, age, timeout in checks:
            if math.isinf(timeout):
                continue
            if math.isnan(age):
                reasons.append(code)
                messages.append(f'no {what} received yet')
                continue
            if abs(age) > timeout:
                reasons.append(code)
                messages.append(
                    f'the last {what} is {age:.3f} s old, beyond the {timeout:.3f} s timeout'
                )
        if self._policy_fault is not None:
            reasons.append('HALT_FOR_POLICY_FAULT')
            messages.append(f'policy fault: {self._policy_fault}')
        if self._instruction_active and math.isfinite(cfg.policy_timeout):
            last = max(
                x
                for x in (self._policy_seen, self._instruction_time, -math.inf)
                if not math.isnan(x)
            )
            silence = now - last
            if silence > cfg.policy_timeout:
                reasons.append('HALT_FOR_STALE_POLICY')
                messages.append(
                    f'an instruction is active and the policy has been silent for '
                    f'{silence:.3f} s (no chunk, no status), beyond policy_timeout '
                    f'{cfg.policy_timeout:.3f} s'
                )
        return reasons, messages

    def step_scale(self, now: float) -> float:
        """Fraction of one period's step a target may move at ``now`` (for an IK callable's
        joint-velocity time base: ``dt = period * step_scale(now)``)."""
        return self._step_scale(now)

    def _step_scale(self, now: float) -> float:
        """Fraction of one period's step allowed now: the real time since the hold pose last
        moved (a passed or clipped target; a re-sent hold uses no motion), capped at one period
        (one period before any)."""
        period = self.config.period
        if not math.isfinite(self._last_output_time):
            return 1.0
        elapsed = now - self._last_output_time
        return min(max(elapsed, 0.0), period) / period

    def _tracking(self) -> tuple[str, str] | None:
        """(reason, message) when the command is further from the measured pose than allowed."""
        cfg = self.config
        if self._measured_pose is None or self._hold_pose is None:
            return None
        distance = float(np.linalg.norm(self._hold_pose[:3, 3] - self._measured_pose[:3, 3]))
        angle = _angle_between(self._measured_pose[:3, :3], self._hold_pose[:3, :3])
        if distance > cfg.max_tracking_error or angle > cfg.max_tracking_rotation:
            return (
                'HALT_FOR_TRACKING_ERROR',
                f'the command is {distance:.4f} m and {angle:.4f} rad from the measured pose '
                f'(limits {cfg.max_tracking_error:.4f} m, {cfg.max_tracking_rotation:.4f} '
                f'rad); re-anchored on the measured pose',
            )
        return None

    def _tracking_hold(self, now: float, outcome: str) -> SafetyDecision | None:
        failure = self._tracking()
        if failure is None:
            return None
        assert self._measured_pose is not None
        self._hold_pose = self._measured_pose.copy()
        self._hold_q = None
        return self._hold(now, SafetyState.HOLD, [failure[0]], [failure[1]], outcome)

    def tick(self, now: float) -> SafetyDecision:
        """A control period without a command: run the watchdogs and return the hold decision.

        Args:
            now: [s] current time.

        Returns:
            A hold decision (``outcome = 'held'``); state is the latch,
            a watchdog (commands included),
            or else the state of the last command.
        """
        if not (isinstance(now, (int, float)) and math.isfinite(now)):
            self._latch_fault('FAULT_INVALID_TIME', f'tick() got now = {now}')
        latched = self._hold_if_latched(now, 'held')
        if latched is not None:
            return latched
        if self._hold_pose is None:
            return self._no_reference(now, 'held')
        reasons, messages = self._watchdogs(now, include_commands=True)
        if reasons:
            return self._hold(now, SafetyState.HOLD, reasons, messages, 'held')
        tracking = self._tracking_hold(now, 'held')
        if tracking is not None:
            return tracking
        return self._hold(
            now, self._last_state, list(self._last_reasons), list(self._last_messages), 'held'
        )

    def _is_rigid(self, pose: np.ndarray) -> bool:
        rot = pose[:3, :3]
        if float(np.max(np.abs(rot.T @ rot - np.eye(3)))) > 1e-6:
            return False
        if np.linalg.det(rot) <= 0.0:
            return False
        if np.any(pose[3] != (0.0, 0.0, 0.0, 1.0)):
            return False
        return True

    def _orientation_rpy(self, rot: np.ndarray) -> np.ndarray:
        return Rotation.from_matrix(self._nominal.T @ rot).as_euler('xyz')

    def _orientation_ok(self, rot: np.ndarray, anchor: np.ndarray) -> bool:
        """Inside the orientation bounds, enlarged per angle to include the anchor's."""
        rpy = self._orientation_rpy(rot)
        ref = self._orientation_rpy(anchor)
        low = np.minimum(np.asarray(self.config.orientation_low), ref) - _EPS_ANGLE
        high = np.maximum(np.asarray(self.config.orientation_high), ref) + _EPS_ANGLE
        if np.any(rpy < low):
            return False
        if np.any(rpy > high):
            return False
        return True

    def filter(
        self,
        target_pose: np.ndarray,
        gripper: float,
        now: float,
        *,
        ik: Callable[[np.ndarray], Any] | None = None,
    ) -> SafetyDecision:
        """Check one target; return what may pass (or the hold pose).

        The checks run in a fixed order, one limit each; the first that refuses ends the call
        with a hold, a clip (``mode = 'clip'``) shortens the target and names its limit.

        Args:
            target_pose: (4, 4) target TCP pose from the rate limiter, or None for a target
                message that held no valid pose (`openvla_ros.msgio.poses.InvalidPoseError`):
                refused with REJECT_INVALID_POSE.
            gripper: target opening, 0 = closed, 1 = open.
            now: [s] current time (one call per control period).
            ik: optional callable ``pose -> IKResult`` (e.g. ``partial(kin.ik, seed=q,
                dt=period)``);
                a failed solve holds, a raising or malformed one latches FAULT.

        Returns:
            A ``SafetyDecision``. Never raises for bad data.
        """
        if not (isinstance(now, (int, float)) and math.isfinite(now)):
            self._latch_fault('FAULT_INVALID_TIME', f'filter() got now = {now}')
        else:
            self._command_stamp = float(now)
        latched = self._hold_if_latched(now, 'rejected')
        if latched is not None:
            return latched
        if self._hold_pose is None:
            return self._no_reference(now, 'rejected')
        pose = self._check_input(target_pose, gripper, now)
        if isinstance(pose, SafetyDecision):
            return pose
        target = _Target(
            now=now,
            position=pose[:3, 3].copy(),
            rot=pose[:3, :3].copy(),
            gripper=float(gripper),
            prev=self._hold_pose,
            scale=self._step_scale(now),
            ik=ik,
        )
        for check in (
            self._check_watchdogs,
            self._check_tracking,
            self._check_orientation,
            self._check_workspace,
            self._check_step_translation,
            self._check_step_rotation,
            self._check_gripper_range,
            self._check_gripper_rate,
            self._check_toward_workspace,
            self._check_invariants,
            self._check_ik,
        ):
            refused = check(target)
            if refused is not None:
                return refused
        return self._pass(target)

    # ------------------------------------------------------------------ filter() steps
    # Each check returns None to go on, or the hold decision that ends filter().
    def _check_input(
        self, target_pose: Any, gripper: Any, now: float
    ) -> np.ndarray | SafetyDecision:
        """The target as a finite rigid (4, 4) array with a finite gripper, or the hold."""
        pose = _finite_pose(target_pose)
        if pose is None:
            return self._reject(
                now,
                'REJECT_INVALID_POSE',
                'the target is not a (4, 4) numeric matrix (None: the message held no valid pose)',
            )
        problem = _non_finite(pose, gripper)
        if problem is not None:
            return self._reject(now, 'REJECT_NON_FINITE', problem)
        if not self._is_rigid(pose):
            return self._reject(
                now,
                'REJECT_INVALID_POSE',
                'the target rotation is not orthonormal or the last row is not [0, 0, 0, 1]',
            )
        return pose

    def _check_watchdogs(self, t: _Target) -> SafetyDecision | None:
        """Camera, joint states and policy (commands are tick()'s: this call is one)."""
        reasons, messages = self._watchdogs(t.now, include_commands=False)
        if reasons:
            return self._hold(t.now, SafetyState.HOLD, reasons, messages, 'rejected')
        return None

    def _check_tracking(self, t: _Target) -> SafetyDecision | None:
        """The command too far from the measured pose: re-anchor on it and hold."""
        return self._tracking_hold(t.now, 'rejected')

    def _check_orientation(self, t: _Target) -> SafetyDecision | None:
        """Orientation bounds (Euler 'xyz' of R_nominal^T R), anchored on the previous output."""
        if self._orientation_ok(t.rot, t.prev[:3, :3]):
            return None
        cfg = self.config
        rpy = self._orientation_rpy(t.rot)
        text = (
            f'orientation rpy {np.round(rpy, 4).tolist()} rad is outside '
            f'[{list(cfg.orientation_low)}, {list(cfg.orientation_high)}]'
        )
        if cfg.mode != 'clip':
            return self._reject(t.now, 'REJECT_ORIENTATION_LIMIT', text)
        t.rot = self._bounds.clip_rotation(t.rot, anchor=t.prev[:3, :3])
        t.clip('CLIP_ORIENTATION_LIMIT', text + '; clipped')
        return None

    def _check_workspace(self, t: _Target) -> SafetyDecision | None:
        """Workspace box, anchored on the previous output."""
        allowed = self._bounds.clip_position(t.position, anchor=t.prev[:3, 3])
        if np.array_equal(allowed, t.position):
            return None
        box = self.config.workspace
        text = (
            f'target position {np.round(t.position, 4).tolist()} m is outside the box '
            f'{list(box.low)}..{list(box.high)} m'
        )
        if self.config.mode != 'clip':
            return self._reject(t.now, 'REJECT_OUTSIDE_WORKSPACE', text)
        t.position = allowed
        t.clip('CLIP_TO_WORKSPACE', text + '; clipped')
        return None

    def _check_step_translation(self, t: _Target) -> SafetyDecision | None:
        """Step in translation (norm), relative to the previous output, per real time."""
        max_translation = self.config.max_step_translation * t.scale
        step = t.position - t.prev[:3, 3]
        distance = float(np.linalg.norm(step))
        if not distance > max_translation:
            return None
        text = (
            f'step of {distance:.4f} m exceeds {max_translation:.4f} m '
            f'(max_step_translation over {t.scale:.2f} period)'
        )
        if self.config.mode != 'clip':
            return self._reject(t.now, 'REJECT_STEP_TRANSLATION', text)
        t.position = t.prev[:3, 3] + step * (max_translation / distance)
        t.clip('CLIP_STEP_TRANSLATION', text + '; shortened')
        return None

    def _check_step_rotation(self, t: _Target) -> SafetyDecision | None:
        """Step in rotation (geodesic angle), relative to the previous output, per real time."""
        max_rotation = self.config.max_step_rotation * t.scale
        prev_rot = t.prev[:3, :3]
        turn = Rotation.from_matrix(t.rot @ prev_rot.T).as_rotvec()
        angle = float(np.linalg.norm(turn))
        if not angle > max_rotation:
            return None
        text = (
            f'rotation step of {angle:.4f} rad exceeds {max_rotation:.4f} rad '
            f'(max_step_rotation over {t.scale:.2f} period)'
        )
        if self.config.mode != 'clip':
            return self._reject(t.now, 'REJECT_STEP_ROTATION', text)
        scaled = turn * (max_rotation / angle) if angle > 0.0 else turn
        t.rot = Rotation.from_rotvec(scaled).as_matrix() @ prev_rot
        t.clip('CLIP_STEP_ROTATION', text + '; shortened')
        return None

    def _check_gripper_range(self, t: _Target) -> SafetyDecision | None:
        """Gripper opening within [0, 1]; clipped in both modes (never refuses)."""
        g = t.gripper
        if not (g < 0.0 or g > 1.0):
            return None
        t.clip('CLIP_GRIPPER_RANGE', f'gripper {g:.4f} is outside [0, 1]; clipped')
        t.gripper = float(np.clip(g, 0.0, 1.0))
        return None

    def _check_gripper_rate(self, t: _Target) -> SafetyDecision | None:
        """Gripper change relative to the previous output, per real time."""
        max_gripper = self.config.max_step_gripper * t.scale
        gripper_step = t.gripper - self._hold_gripper
        if not abs(gripper_step) > max_gripper:
            return None
        text = (
            f'gripper change {gripper_step:+.4f} exceeds {max_gripper:.4f} '
            f'(max_step_gripper over {t.scale:.2f} period)'
        )
        if self.config.mode != 'clip':
            return self._reject(t.now, 'REJECT_GRIPPER_RATE', text)
        t.gripper = self._hold_gripper + math.copysign(max_gripper, gripper_step)
        t.clip('CLIP_GRIPPER_RATE', text + '; slowed')
        return None

    def _check_toward_workspace(self, t: _Target) -> SafetyDecision | None:
        """An arm outside the safe set: the limits above let only motion back toward it pass;
        name it (never refuses)."""
        if self._bounds.contains(t.prev) or self._bounds.contains(t.pose()):
            return None
        t.clip(
            'CLIP_TOWARD_WORKSPACE',
            f'the arm is outside the safe set at {np.round(t.prev[:3, 3], 4).tolist()} m; '
            f'only motion back toward it passes',
        )
        return None

    def _check_invariants(self, t: _Target) -> SafetyDecision | None:
        """Final invariant check of the clipped target; anything odd becomes a hold."""
        failure = self._final_check(t.pose(), t.gripper, t.scale)
        if failure is None:
            return None
        return self._reject(t.now, 'REJECT_FINAL_CHECK', failure)

    def _check_ik(self, t: _Target) -> SafetyDecision | None:
        """Joints for the target from the ``ik`` callable, which checks joint position and
        velocity limits: a failed solve holds, a raising or malformed callable latches FAULT."""
        if t.ik is None:
            return None
        pose = t.pose()
        if self._hold_q is not None and np.array_equal(pose, t.prev):
            # the hold pose again (an idle limiter): its joints were solved and checked when it
            # passed, and standing still needs no joint speed; no IK solve per period for it
            t.q = self._hold_q.copy()
            return None
        try:
            result = t.ik(pose)
        except Exception as error:  # noqa: BLE001 - any failure of the callable latches FAULT
            return self._fault_hold(
                t.now,
                'FAULT_IK_EXCEPTION',
                f'the IK callable raised {type(error).__name__}: {error}',
            )
        ok = getattr(result, 'ok', None)
        if not isinstance(ok, (bool, np.bool_)):
            return self._fault_hold(
                t.now,
                'FAULT_IK_INVALID_RESULT',
                f'the IK callable returned {type(result).__name__} without a boolean ok',
            )
        if not ok:
            return self._ik_failure(t.now, result)
        q = getattr(result, 'q', None)
        try:
            q_arr = None if q is None else np.array(q, dtype=float)
        except (TypeError, ValueError):  # "never raises for bad data" covers the callable too
            q_arr = None
        if q_arr is None or q_arr.ndim != 1 or not np.all(np.isfinite(q_arr)):
            return self._fault_hold(
                t.now,
                'FAULT_IK_INVALID_RESULT',
                'the IK callable returned ok without finite joint positions',
            )
        t.q = q_arr
        self._ik_failures = 0
        return None

    def _pass(self, t: _Target) -> SafetyDecision:
        """Every check passed: the (clipped) target becomes the hold pose and goes out."""
        pose = t.pose()
        self._hold_pose = pose
        self._hold_gripper = t.gripper
        self._last_output_time = float(t.now)
        self._hold_q = t.q  # None without an ik callable: the old joints are not this pose's
        if t.clips:
            self.clipped += 1
            state = SafetyState.LIMITED
            outcome = 'clipped'
        else:
            self.passed += 1
            state = SafetyState.OK
            outcome = 'passed'
        self._last_state = state
        self._last_reasons = tuple(t.clips)
        self._last_messages = tuple(t.notes)
        return SafetyDecision(
            t.now,
            pose.copy(),
            t.gripper,
            False,
            state,
            tuple(t.clips),
            tuple(t.notes),
            outcome,
            None if t.q is None else t.q.copy(),
        )

    def _ik_failure(self, now: float, result: Any) -> SafetyDecision:
        reason = str(getattr(result, 'reason', 'IK_NO_CONVERGENCE'))
        message = str(getattr(result, 'message', ''))
        code = _IK_REASON_TO_HALT.get(reason, 'HALT_FOR_IK_FAILURE')
        self._ik_failures += 1
        limit = self.config.ik_failures_before_fault
        if limit > 0 and self._ik_failures >= limit:
            return self._fault_hold(
                now,
                'FAULT_IK_REPEATED_FAILURE',
                f'IK failed {self._ik_failures} times in a row; last: {reason}: {message}',
            )
        return self._hold(now, SafetyState.HOLD, [code], [f'{reason}: {message}'], 'rejected')

    def _final_check(self, pose: np.ndarray, gripper: float, scale: float) -> str | None:
        cfg = self.config
        assert self._hold_pose is not None
        prev = self._hold_pose
        if not np.all(np.isfinite(pose)):
            return 'the filtered pose is not finite'
        if not math.isfinite(gripper):
            return 'the filtered gripper is not finite'
        low = np.minimum(np.asarray(cfg.workspace.low), prev[:3, 3]) - _EPS_POSITION
        high = np.maximum(np.asarray(cfg.workspace.high), prev[:3, 3]) + _EPS_POSITION
        if np.any(pose[:3, 3] < low) or np.any(pose[:3, 3] > high):
            return 'the filtered position is outside the box (or further out than the last output)'
        distance = float(np.linalg.norm(pose[:3, 3] - prev[:3, 3]))
        if distance > cfg.max_step_translation * scale + _EPS_POSITION:
            return f'the filtered step {distance:.6f} m exceeds max_step_translation'
        angle = _angle_between(prev[:3, :3], pose[:3, :3])
        if angle > cfg.max_step_rotation * scale + _EPS_ANGLE:
            return f'the filtered rotation step {angle:.6f} rad exceeds max_step_rotation'
        if not self._orientation_ok(pose[:3, :3], prev[:3, :3]):
            return 'the filtered orientation is outside the orientation bounds'
        if gripper < 0.0 or gripper > 1.0:
            return 'the filtered gripper is outside [0, 1]'
        if abs(gripper - self._hold_gripper) > cfg.max_step_gripper * scale + 1e-12:
            return 'the filtered gripper step exceeds max_step_gripper'
        return None
