"""Message <-> core type conversions shared by the nodes."""

from __future__ import annotations

import struct

from geometry_msgs.msg import Point, Pose, Quaternion
import numpy as np
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import JointState

__all__ = ['header_stamp_from_cdr', 'joint_positions', 'matrix_to_pose', 'pose_to_matrix']


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """geometry_msgs/Pose -> (4, 4); a zero or non-finite quaternion gives NaNs (rejected)."""
    q = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w])
    out = np.full((4, 4), np.nan)
    out[3] = (0.0, 0.0, 0.0, 1.0)
    out[:3, 3] = (pose.position.x, pose.position.y, pose.position.z)
    norm = float(np.linalg.norm(q))
    if np.all(np.isfinite(q)) and norm > 1e-9:
        out[:3, :3] = Rotation.from_quat(q / norm).as_matrix()
    return out


def matrix_to_pose(matrix: np.ndarray) -> Pose:
    """(4, 4) -> geometry_msgs/Pose (quaternion x, y, z, w)."""
    x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    p = matrix[:3, 3]
    return Pose(
        position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
        orientation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)),
    )


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
