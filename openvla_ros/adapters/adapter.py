"""One adapter per driver interface: a safe end-effector target -> what to send to that driver.

- ``xs_sdk``: Interbotix ``JointGroupCommand`` 'arm' (IK); gripper ``JointSingleCommand`` 'gripper'
  in pwm, +-effort.
- ``ros2_control``: ``JointTrajectory`` with one point at one control period (IK); gripper
  ``JointTrajectory`` on 'left_finger' [m].
- ``franka_impedance``: ``PoseStamped`` equilibrium pose (IK only checks that it is reachable);
  gripper franka_gripper move/grasp (or control_msgs GripperCommand).
- ``franka_jtc``: ``JointTrajectory`` like ros2_control (IK); gripper as franka_impedance.
- ``servo``: ``TwistStamped`` = (target - measured) / period, clipped; no gripper.

Rules shared by all: nothing is sent before the first joint state (no IK seed, no measured pose); a
hold target re-sends the hold pose (and, if that pose has no valid solution, the last command); a
target whose solution breaks a joint limit is refused with a reason and nothing at all is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from openvla_ros.adapters.gripper import (
    changed_meaningfully,
    finger_position,
    franka_gripper_command,
    FrankaGripperConfig,
    gripper_action_command,
    INTERBOTIX_GRIPPER_PWM,
    interbotix_gripper_pwm,
    WX250S_FINGER_RANGE,
)
from openvla_ros.adapters.interfaces import driver_interface, FRANKA_GRIPPER_INTERFACES
from openvla_ros.adapters.joints import (
    JointLimitConfig,
    JointTargetSolver,
    LIMIT_JOINT_VELOCITY,
)
from openvla_ros.adapters.servo import servo_twist, zero_twist
from openvla_ros.adapters.values import (
    AdapterResult,
    EndEffectorCommand,
    FrankaGripperValues,
    GripperCommandValues,
    GripperValues,
    HOLD_LAST_COMMAND,
    HOLD_RESENT,
    JointGroupCommandValues,
    JointSingleCommandValues,
    JointTrajectoryValues,
    OK,
    PoseValues,
    REJECT_NON_FINITE,
    WAIT_FOR_JOINT_STATES,
)


@dataclass(frozen=True)
class AdapterConfig:
    """Everything an adapter needs to know about its interface.

    Attributes:
        interface: one of ``INTERFACES`` (``openvla_ros.adapters.interfaces``).
        robot: an arm the interface drives (its table row): 'wx250s' (xs_sdk, ros2_control,
            servo) or 'panda' / 'fr3' (franka_*, servo).
        frame_id: base frame for poses and twists; '' uses the target's frame_id.
        arm_group: Interbotix joint group of the arm.
        gripper_joint: Interbotix gripper joint name (pwm mode).
        gripper_pwm: [pwm] Interbotix gripper effort (open positive).
        finger_joint: ros2_control gripper controller joint.
        finger_range: [m] finger position closed .. open.
        franka_gripper: Franka gripper goals.
        franka_gripper_interface: 'franka_actions' (move/grasp) or 'gripper_action' (control_msgs).
        limits: joint limit margin and velocity scale applied after IK.
        check_reach: franka_impedance / servo: refuse a target that has no IK solution within the
            limits.
        max_linear_speed: [m/s] servo twist clip.
        max_angular_speed: [rad/s] servo twist clip.
    """

    interface: str
    robot: str
    frame_id: str = ''
    arm_group: str = 'arm'
    gripper_joint: str = 'gripper'
    gripper_pwm: float = INTERBOTIX_GRIPPER_PWM
    finger_joint: str = 'left_finger'
    finger_range: tuple[float, float] = WX250S_FINGER_RANGE
    franka_gripper: FrankaGripperConfig = field(default_factory=FrankaGripperConfig)
    franka_gripper_interface: str = 'franka_actions'
    limits: JointLimitConfig = field(default_factory=JointLimitConfig)
    check_reach: bool = True
    max_linear_speed: float = 0.25
    max_angular_speed: float = 1.0

    def __post_init__(self) -> None:
        row = driver_interface(self.interface)  # raises for an unknown one, listing them
        if self.robot not in row.robots:
            raise ValueError(
                f'interface {self.interface!r} drives {row.hardware}, not {self.robot!r}'
            )
        if self.franka_gripper_interface not in FRANKA_GRIPPER_INTERFACES:
            raise ValueError(
                f'unknown franka_gripper_interface {self.franka_gripper_interface!r}; '
                f'known: {", ".join(FRANKA_GRIPPER_INTERFACES)}'
            )
        lo, hi = self.finger_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(
                f'finger_range {self.finger_range!r} must be finite with lower < upper'
            )


class ArmAdapter:
    """Maps safe targets to one interface's commands; remembers what it last sent (hold, velocity,
    gripper).

    Args:
        config: the interface and its settings.

    Raises:
        ValueError: bad configuration or unknown robot.
    """

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.solver = JointTargetSolver(config.robot, config.limits)
        self.last_q: np.ndarray | None = None
        self.last_pose: np.ndarray | None = None
        self.last_gripper_goal: FrankaGripperValues | GripperCommandValues | None = None
        self.last_command_time: float | None = None
        self._solved_pose: np.ndarray | None = None  # the pose whose IK solution last_q is

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Arm joint names in command order (the names joint states are matched against)."""
        return self.solver.joint_names

    def reset(self) -> None:
        """Forget the last commands (e.g. after the driver restarted)."""
        self.last_q = None
        self.last_pose = None
        self.last_gripper_goal = None
        self.last_command_time = None
        self._solved_pose = None

    def gripper_goal_sent(self, goal: FrankaGripperValues | GripperCommandValues) -> None:
        """Records a Franka gripper goal the driver accepted (so that it is not sent again)."""
        self.last_gripper_goal = goal

    # ------------------------------------------------------------------ the mapping
    def command(
        self,
        target: EndEffectorCommand,
        measured_q: np.ndarray | None,
        *,
        period: float,
        now: float | None = None,
    ) -> AdapterResult:
        """What to send for ``target``.

        Args:
            target: the safe end-effector target.
            measured_q: measured arm joints in ``joint_names`` order; None before the first joint
                state.
            period: [s] control period (trajectory point time, servo gain, velocity check).
            now: [s] current time: the joint-velocity check allows the motion of the real time
                since the last command sent (capped at ``period``); None = one period.

        Raises:
            ValueError: period not finite and > 0.
        """
        if not (math.isfinite(period) and period > 0.0):
            raise ValueError(f'period = {period!r} must be finite and > 0')
        if not target.is_finite():
            return AdapterResult(False, REJECT_NON_FINITE, 'the target has a non-finite value')
        if measured_q is None:
            return AdapterResult(
                False, WAIT_FOR_JOINT_STATES, 'no joint state with every arm joint received yet'
            )
        if self.config.interface == 'servo':
            return self._servo(target, measured_q, period)
        if self.config.interface == 'franka_impedance' and not self.config.check_reach:
            return self._accept(target, None, period, None, OK, 'sent without a reach check')
        solved = self._solved_pose
        if self.last_q is not None and solved is not None and np.array_equal(target.pose, solved):
            # the pose of the last command again (an idle limiter, a hold), whose joints were
            # that pose's own IK solution (not a slowed step toward it), checked when sent;
            # standing still needs no joint speed: no IK per period for it
            failure = self.solver.check(self.last_q, None, period)
            if failure is None:
                if now is not None:
                    self.last_command_time = float(now)
                reason = HOLD_RESENT if target.hold else OK
                result = self._accept(
                    target, self.last_q, period, None, reason, 'the last command again'
                )
                self._solved_pose = solved
                return result
        reference = self.last_q if self.last_q is not None else measured_q
        elapsed = None
        if now is not None and self.last_command_time is not None and self.last_q is not None:
            elapsed = now - self.last_command_time
        solution = self.solver.solve(
            target.pose,
            measured_q,
            period=period,
            reference=reference,
            elapsed=elapsed,
            catch_up=self.last_q is not None,
        )
        if solution.ok:
            reason = HOLD_RESENT if target.hold else OK
            if solution.reason == LIMIT_JOINT_VELOCITY:
                reason = LIMIT_JOINT_VELOCITY
            if now is not None:
                self.last_command_time = float(now)
            result = self._accept(
                target, solution.q, period, solution.ik, reason, solution.message
            )
            if reason != LIMIT_JOINT_VELOCITY:
                self._solved_pose = np.array(target.pose, dtype=float)  # last_q is its solution
            return result
        if target.hold:
            return self._hold_fallback(target, measured_q, period, solution)
        return AdapterResult(False, solution.reason, solution.message, ik=solution.ik)

    def _hold_fallback(
        self, target: EndEffectorCommand, measured_q: np.ndarray, period: float, solution
    ) -> AdapterResult:
        """A hold pose without a valid solution: repeat the last command, else stay where the arm
        is."""
        q = self.last_q if self.last_q is not None else measured_q
        if self.solver.check(q, None, period) is not None:
            return AdapterResult(False, solution.reason, solution.message, ik=solution.ik)
        pose = self.last_pose if self.last_pose is not None else self.solver.kinematics.fk(q)
        held = EndEffectorCommand(pose, target.gripper, True, target.frame_id)
        return self._accept(
            held,
            q,
            period,
            solution.ik,
            HOLD_LAST_COMMAND,
            f'hold pose refused ({solution.reason}: {solution.message}); '
            'repeating the last command',
        )

    def _accept(
        self,
        target: EndEffectorCommand,
        q: np.ndarray | None,
        period: float,
        ik,
        reason: str,
        message: str,
    ) -> AdapterResult:
        interface = self.config.interface
        frame_id = self.config.frame_id or target.frame_id
        if interface == 'xs_sdk':
            assert q is not None
            arm = JointGroupCommandValues(self.config.arm_group, tuple(float(v) for v in q))
        elif interface in ('ros2_control', 'franka_jtc'):
            assert q is not None
            arm = JointTrajectoryValues(self.joint_names, tuple(float(v) for v in q), period)
        else:
            arm = PoseValues.from_matrix(target.pose, frame_id)
        gripper = self._gripper(target.gripper, period)
        self._solved_pose = None  # set again by the caller when q is the pose's own solution
        if q is not None:
            self.last_q = np.array(q, dtype=float)
        self.last_pose = np.array(target.pose, dtype=float)
        return AdapterResult(True, reason, message, arm, gripper, q, ik)

    def _gripper(self, opening: float, period: float) -> GripperValues | None:
        cfg = self.config
        if cfg.interface == 'xs_sdk':
            return JointSingleCommandValues(
                cfg.gripper_joint, interbotix_gripper_pwm(opening, effort=cfg.gripper_pwm)
            )
        if cfg.interface == 'ros2_control':
            return JointTrajectoryValues(
                (cfg.finger_joint,), (finger_position(opening, cfg.finger_range),), period
            )
        if cfg.interface == 'servo':
            return None
        if cfg.franka_gripper_interface == 'gripper_action':
            goal: FrankaGripperValues | GripperCommandValues = gripper_action_command(
                opening, cfg.franka_gripper
            )
        else:
            goal = franka_gripper_command(opening, cfg.franka_gripper)
        if not changed_meaningfully(
            goal, self.last_gripper_goal, cfg.franka_gripper.min_width_change
        ):
            return None
        return goal

    def _servo(
        self, target: EndEffectorCommand, measured_q: np.ndarray, period: float
    ) -> AdapterResult:
        cfg = self.config
        frame_id = cfg.frame_id or target.frame_id
        if target.hold:
            return AdapterResult(True, HOLD_RESENT, 'hold: zero twist', zero_twist(frame_id))
        ik = None
        if cfg.check_reach:
            solution = self.solver.solve(target.pose, measured_q, period=period, reference=None)
            ik = solution.ik
            if not solution.ok:
                return AdapterResult(False, solution.reason, solution.message, ik=ik)
        measured = self.solver.kinematics.fk(measured_q)
        twist = servo_twist(
            target.pose,
            measured,
            period=period,
            max_linear_speed=cfg.max_linear_speed,
            max_angular_speed=cfg.max_angular_speed,
            frame_id=frame_id,
        )
        self.last_pose = np.array(target.pose, dtype=float)
        return AdapterResult(True, OK, 'twist toward the target', twist, None, None, ik)
