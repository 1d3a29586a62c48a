"""Message <-> core type conversions shared by the nodes."""

from __future__ import annotations

import struct

from geometry_msgs.msg import Point, Pose, Quaternion
import numpy as np
from sensor_msgs.msg import JointState

from openvla_ros.msgio.poses import InvalidPoseError, matrix_to_position_quaternion, pose_to_matrix

__all__ = [
    'InvalidPoseError',
    'header_stamp_from_cdr',
    'joint_positions',
    'matrix_to_pose',
    'pose_to_matrix',
]


def matrix_to_pose(matrix: np.ndarray) -> Pose:
    """(4, 4) -> geometry_msgs/Pose (quaternion x, y, z, w); the inverse of ``pose_to_matrix``
    (``openvla_ros.msgio.poses``: it raises ``InvalidPoseError`` for a zero or non-finite pose)."""
    (px, py, pz), (x, y, z, w) = matrix_to_position_quaternion(matrix)
    return Pose(position=Point(x=px, y=py, z=pz), orientation=Quaternion(x=x, y=y, z=z, w=w))


def joint_positions(msg: JointState, names: tuple[str, ...]) -> np.ndarray | None:
    """The positions of ``names`` in order, or None if one is missing (a gripper-only message)."""
    index = {n: i for i, n in enumerate(msg.name)}
    if any(n not in index or index[n] >= len(msg.position) for n in names):
        return None
    return np.array([msg.position[index[n]] for n in names], dtype=float)


def header_stamp_from_cdr(data: bytes) -> float | None:
    """The ``header.stamp`` [s] of a serialized message that starts with a std_msgs/Header
    (sensor_msgs/Image, CompressedImage), read without deserializing the rest.

    A subscription with ``raw=True`` hands over the CDR bytes: a 4-byte encapsulation header
    (byte 1: 1 = little endian, 0 = big endian), then ``stamp.sec`` (int32) and ``stamp.nanosec``
    (uint32). Reading 12 bytes instead of converting a 0.9 MB image is what keeps the safety
    monitor's camera watchdog cheap. Returns None for bytes too short or of unknown encoding.
    """
    if len(data) < 12 or data[1] not in (0, 1):
        return None
    sec, nanosec = struct.unpack_from('<iI' if data[1] == 1 else '>iI', data, 4)
    if nanosec >= 1_000_000_000:
        return None
    return sec + nanosec * 1e-9
