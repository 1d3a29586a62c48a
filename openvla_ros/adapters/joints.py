"""End-effector pose -> arm joint positions, checked against the limits before anything is sent.

The kinematics' IK already rejects solutions outside the URDF limits; the adapter checks again with
its own margin (drivers such as Interbotix xs_sdk do not enforce limits themselves) and against the
joint velocity limit over the real time since the last command (capped at one control period),
measured from the last command (where the arm was told to be): two commands 1 ms apart may differ
by only 1 ms of joint motion, however many arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math

import numpy as np

from openvla_ros.adapters.values import REJECT_JOINT_LIMIT, REJECT_JOINT_VELOCITY
from openvla_ros.control.kinematics import ArmKinematics, get_kinematics, IKResult

# [rad] IK tolerance: re-solving the same pose from another seed may differ by this much.
_VELOCITY_SLACK = 1e-6
# A target at most this many periods of joint motion from the last command is approached at the
# joint speed limits (targets that arrived faster than the joints may follow); further is a jump
# and is refused.
CATCH_UP_PERIODS = 2.0
# Reason of a solution slowed to the joint speed limits (ok, sent).
LIMIT_JOINT_VELOCITY = 'LIMIT_JOINT_VELOCITY'


@dataclass(frozen=True)
class JointLimitConfig:
    """Extra limits the adapter applies after IK.

    Attributes:
        joint_limit_margin: [rad] a joint must stay this far inside each URDF limit.
        velocity_scale: fraction of each joint's velocity limit allowed over one control period;
            0 disables the velocity check.
    """

    joint_limit_margin: float = 0.0
    velocity_scale: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.joint_limit_margin) and 0.0 <= self.joint_limit_margin < 0.5):
            raise ValueError(
                f'joint_limit_margin = {self.joint_limit_margin!r} must be in [0, 0.5) rad'
            )
        if not (math.isfinite(self.velocity_scale) and 0.0 <= self.velocity_scale <= 1.0):
            raise ValueError(f'velocity_scale = {self.velocity_scale!r} must be in [0, 1]')


@dataclass(frozen=True)
class JointSolution:
    """IK plus the adapter's own checks: ``q`` only when ``ok``; else ``reason`` and
    ``message``."""

    ok: bool
    q: np.ndarray | None
    reason: str
    message: str
    ik: IKResult


class JointTargetSolver:
    """Solves a TCP pose for one arm and checks the result against limits (no state).

    Args:
        robot: 'wx250s', 'panda' or 'fr3'.
        limits: the adapter's extra limits.

    Raises:
        ValueError: unknown robot.
    """

    def __init__(self, robot: str, limits: JointLimitConfig | None = None) -> None:
        self.kinematics: ArmKinematics = get_kinematics(robot)
        self.limits = limits or JointLimitConfig()

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Arm joint names in command order."""
        return self.kinematics.joint_names

    def arm_positions(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray | None:
        """The arm joints of a joint state, in command order; None if one is missing or not
        finite."""
        index = {n: i for i, n in enumerate(names)}
        out = np.empty(len(self.joint_names))
        for k, name in enumerate(self.joint_names):
            i = index.get(name)
            if i is None or i >= len(positions):
                return None
            out[k] = float(positions[i])
        return out if bool(np.all(np.isfinite(out))) else None

    def check(
        self,
        q: np.ndarray,
        reference: np.ndarray | None,
        period: float,
        elapsed: float | None = None,
    ) -> tuple[str, str] | None:
        """(reason, message) if ``q`` breaks a limit (with margin) or is too fast from
        ``reference``: it may move ``limit * min(elapsed, period)`` (``elapsed`` None = one
        period)."""
        kin = self.kinematics
        margin = self.limits.joint_limit_margin
        for i, name in enumerate(kin.joint_names):
            lower = kin.lower[i] + margin
            upper = kin.upper[i] - margin
            if not math.isfinite(q[i]) or q[i] < lower or q[i] > upper:
                return REJECT_JOINT_LIMIT, (
                    f'{name} = {q[i]:.4f} rad is outside [{lower:.4f}, '
                    f'{upper:.4f}] rad (URDF limits less {margin:.3f} rad)'
                )
        if reference is None or self.limits.velocity_scale <= 0.0:
            return None
        dt = period if elapsed is None else min(max(float(elapsed), 0.0), period)
        for i, name in enumerate(kin.joint_names):
            limit = kin.max_velocity[i] * self.limits.velocity_scale
            move = abs(q[i] - reference[i])
            if move > limit * dt + _VELOCITY_SLACK:
                return REJECT_JOINT_VELOCITY, (
                    f'{name} would move {move:.4f} rad in {dt:.4f} s '
                    f'(more than {limit:.2f} rad/s allows)'
                )
        return None

    def solve(
        self,
        pose: np.ndarray,
        seed: np.ndarray,
        *,
        period: float,
        reference: np.ndarray | None = None,
        elapsed: float | None = None,
        catch_up: bool = False,
    ) -> JointSolution:
        """IK for ``pose`` seeded with ``seed`` (the measured joints), then the limit checks.

        Args:
            pose: (4, 4) TCP target in the base frame.
            seed: measured arm joints [rad].
            period: [s] control period, for the velocity check.
            reference: joints the velocity is measured from (the last command); None skips that
                check.
            elapsed: [s] real time since that command (capped at ``period``); None = one period.
            catch_up: ``reference`` is the last command sent: a target that came in faster than
                the joints may follow is approached at their speed limits, not refused.

        Raises:
            ValueError: malformed pose/seed or period not > 0.
        """
        if not (math.isfinite(period) and period > 0.0):
            raise ValueError(f'period = {period!r} must be finite and > 0')
        ik = self.kinematics.ik(pose, seed)
        if not ik.ok or ik.q is None:
            return JointSolution(False, None, ik.reason, ik.message, ik)
        failure = self.check(ik.q, reference, period, elapsed)
        velocity = failure is not None and failure[0] == REJECT_JOINT_VELOCITY
        if velocity and catch_up and reference is not None:
            slowed = self._slow_down(ik.q, reference, period, elapsed)
            if slowed is not None:
                return JointSolution(True, slowed, LIMIT_JOINT_VELOCITY, failure[1] + (
                    '; sent a step toward it at the joint speed limit'), ik)
        if failure is not None:
            return JointSolution(False, None, failure[0], failure[1], ik)
        return JointSolution(True, ik.q.copy(), ik.reason, ik.message, ik)

    def _slow_down(
        self, q: np.ndarray, reference: np.ndarray, period: float, elapsed: float | None
    ) -> np.ndarray | None:
        """The step from ``reference`` toward ``q`` that keeps every joint at its speed limit
        over the elapsed time, when ``q`` is at most ``CATCH_UP_PERIODS`` periods of joint motion
        away (commands that came in faster than the joints may follow); None for a real jump.

        Both ends are inside the joint limits (box-shaped), so every point between them is too;
        a trajectory controller interpolates the same way.
        """
        kin = self.kinematics
        dt = period if elapsed is None else min(max(float(elapsed), 0.0), period)
        limit = np.asarray(kin.max_velocity, dtype=float) * self.limits.velocity_scale
        move = np.abs(np.asarray(q) - np.asarray(reference))
        if np.any(move > limit * period * CATCH_UP_PERIODS):
            return None
        with np.errstate(divide='ignore'):
            scale = float(np.min(np.where(move > 0.0, limit * dt / move, np.inf)))
        scale = min(max(scale, 0.0), 1.0)
        return np.asarray(reference) + (np.asarray(q) - np.asarray(reference)) * scale
