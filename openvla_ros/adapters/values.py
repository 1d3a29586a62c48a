"""What an adapter sends: plain values per driver interface (no ROS types, so the core stays rclpy-
free).

The node turns each of these into exactly one message or action goal; the field names follow the
driver messages they become (``interbotix_xs_msgs/JointGroupCommand.cmd``,
``franka_msgs/action/Grasp.epsilon``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Union

import numpy as np
from scipy.spatial.transform import Rotation

from openvla_ros.control.kinematics import IKResult
from openvla_ros.msgio.poses import quaternion_to_rotation

# Reason codes of an ``AdapterResult`` besides the kinematics' IK_* codes (each says what and why).
OK = 'OK'
HOLD_RESENT = 'HOLD_RESENT'
HOLD_LAST_COMMAND = 'HOLD_LAST_COMMAND'
WAIT_FOR_JOINT_STATES = 'WAIT_FOR_JOINT_STATES'
REJECT_NON_FINITE = 'REJECT_NON_FINITE'
# a target message that is no pose (a zero or non-finite quaternion): refused before any IK
REJECT_INVALID_POSE = 'REJECT_INVALID_POSE'
REJECT_JOINT_LIMIT = 'REJECT_JOINT_LIMIT'
REJECT_JOINT_VELOCITY = 'REJECT_JOINT_VELOCITY'


@dataclass(frozen=True)
class EndEffectorCommand:
    """One safe end-effector target (what ``openvla_ros/msg/EndEffectorTarget`` carries).

    Attributes:
        pose: (4, 4) TCP pose in the arm's base frame.
        gripper: normalized opening, 0 = closed .. 1 = open.
        hold: True when the arm should hold still at ``pose``.
        frame_id: the base frame the pose is in.
    """

    pose: np.ndarray
    gripper: float
    hold: bool = False
    frame_id: str = ''

    @classmethod
    def from_position_quaternion(
        cls, position, quaternion_xyzw, gripper: float, *, hold: bool = False, frame_id: str = ''
    ) -> EndEffectorCommand:
        """Builds the command from a position [m] and a unit quaternion (x, y, z, w).

        Raises:
            InvalidPoseError: (a ValueError) the quaternion has zero or non-finite norm; the one
                rule of ``openvla_ros.msgio.poses``.
        """
        pose = np.eye(4)
        pose[:3, :3] = quaternion_to_rotation(*np.asarray(quaternion_xyzw, dtype=float))
        pose[:3, 3] = np.asarray(position, dtype=float)
        return cls(pose, float(gripper), bool(hold), frame_id)

    def is_finite(self) -> bool:
        """Whether the pose and the gripper value are all finite."""
        return bool(np.all(np.isfinite(self.pose))) and math.isfinite(self.gripper)


@dataclass(frozen=True)
class JointGroupCommandValues:
    """``interbotix_xs_msgs/msg/JointGroupCommand``: group name and one command per group joint."""

    name: str
    cmd: tuple[float, ...]


@dataclass(frozen=True)
class JointSingleCommandValues:
    """``interbotix_xs_msgs/msg/JointSingleCommand``: one joint (e.g. 'gripper' in pwm mode)."""

    name: str
    cmd: float


@dataclass(frozen=True)
class JointTrajectoryValues:
    """``trajectory_msgs/msg/JointTrajectory`` with one point reached ``time_from_start`` [s] from
    now."""

    joint_names: tuple[str, ...]
    positions: tuple[float, ...]
    time_from_start: float


@dataclass(frozen=True)
class PoseValues:
    """``geometry_msgs/msg/PoseStamped``: position [m] and quaternion (x, y, z, w)."""

    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    frame_id: str

    @classmethod
    def from_matrix(cls, pose: np.ndarray, frame_id: str) -> PoseValues:
        """The values of a (4, 4) pose."""
        quat = Rotation.from_matrix(np.asarray(pose)[:3, :3]).as_quat()
        p = np.asarray(pose)[:3, 3]
        return cls(
            (float(p[0]), float(p[1]), float(p[2])),
            (float(quat[0]), float(quat[1]), float(quat[2]), float(quat[3])),
            frame_id,
        )


@dataclass(frozen=True)
class TwistValues:
    """``geometry_msgs/msg/TwistStamped``: linear [m/s] and angular [rad/s] velocity in
    ``frame_id``."""

    linear: tuple[float, float, float]
    angular: tuple[float, float, float]
    frame_id: str


@dataclass(frozen=True)
class FrankaGripperValues:
    """A ``franka_msgs`` gripper goal: ``action`` is 'move' (width, speed) or 'grasp' (all
    fields)."""

    action: str
    width: float
    speed: float
    force: float = 0.0
    epsilon_inner: float = 0.0
    epsilon_outer: float = 0.0


@dataclass(frozen=True)
class GripperCommandValues:
    """A ``control_msgs/action/GripperCommand`` goal: ``command.position`` = width / 2 [m]."""

    position: float
    max_effort: float


ArmValues = Union[JointGroupCommandValues, JointTrajectoryValues, PoseValues, TwistValues]
GripperValues = Union[
    JointSingleCommandValues, JointTrajectoryValues, FrankaGripperValues, GripperCommandValues
]


@dataclass(frozen=True)
class AdapterResult:
    """What to send for one target, or why nothing is sent.

    Attributes:
        ok: True when ``arm`` (and ``gripper``, when not None) should be sent.
        reason: OK, HOLD_RESENT, HOLD_LAST_COMMAND, or why the target was refused
            (WAIT_FOR_JOINT_STATES,
            REJECT_*, IK_*).
        message: one sentence with the numbers.
        arm: the arm command (None when refused).
        gripper: the gripper command; None when refused or when nothing new needs sending.
        q: the arm joint positions [rad] the command means (None for a twist or when refused).
        ik: the last IK result behind this decision (None when no IK ran).
    """

    ok: bool
    reason: str
    message: str
    arm: ArmValues | None = None
    gripper: GripperValues | None = None
    q: np.ndarray | None = field(default=None, compare=False)
    ik: IKResult | None = field(default=None, compare=False)
