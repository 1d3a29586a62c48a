"""geometry_msgs/Pose fields <-> (4, 4) numpy poses, with one rule for an invalid pose.

Duck-typed on the fields (``pose.position.x`` .. ``pose.orientation.w``), so one implementation
serves the nodes (rclpy messages) and the bag reader (rosbags dataclasses) alike, without rclpy.

The rule: a pose whose seven numbers are not all finite, or whose quaternion has (near) zero norm,
is no rigid transform. ``pose_to_matrix`` raises ``InvalidPoseError`` for it, never returns NaN:
the safety monitor node refuses such a target (``REJECT_INVALID_POSE``, it holds), the bag reader
turns it into a ``BagReadError`` that names the pose. Any other quaternion is normalised (as tf2
does), so (0, 0, 0, 2) is the identity.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = [
    'MIN_QUATERNION_NORM',
    'InvalidPoseError',
    'matrix_to_position_quaternion',
    'pose_to_matrix',
    'quaternion_to_rotation',
]

#: Quaternions with a smaller norm carry no orientation (rounding noise or an unset field).
MIN_QUATERNION_NORM = 1e-9


class InvalidPoseError(ValueError):
    """A pose that is no rigid transform: a non-finite number or a zero quaternion."""


def quaternion_to_rotation(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Quaternion (x, y, z, w) -> (3, 3) rotation matrix, normalised first.

    Raises:
        InvalidPoseError: a component is not finite, or the norm is below MIN_QUATERNION_NORM.
    """
    q = np.array([x, y, z, w], dtype=float)
    if not np.all(np.isfinite(q)):
        raise InvalidPoseError(f'quaternion (x, y, z, w) = {_fmt(q)} is not finite')
    scale = float(np.max(np.abs(q)))
    # scaled first, so that huge components do not overflow the norm
    norm = scale * float(np.linalg.norm(q / scale)) if scale > 0.0 else 0.0
    if not norm >= MIN_QUATERNION_NORM:
        raise InvalidPoseError(
            f'quaternion (x, y, z, w) = {_fmt(q)} has norm {norm:.3g} < {MIN_QUATERNION_NORM:g}: '
            'no orientation'
        )
    return Rotation.from_quat(q / scale).as_matrix()


def pose_to_matrix(pose: Any) -> np.ndarray:
    """geometry_msgs/Pose (or any object with its fields) -> (4, 4) float64 homogeneous matrix.

    Raises:
        InvalidPoseError: a non-finite position or quaternion, or a zero quaternion.
    """
    p, o = pose.position, pose.orientation
    position = np.array([p.x, p.y, p.z], dtype=float)
    if not np.all(np.isfinite(position)):
        raise InvalidPoseError(f'position (x, y, z) = {_fmt(position)} is not finite')
    matrix = np.eye(4)
    matrix[:3, :3] = quaternion_to_rotation(o.x, o.y, o.z, o.w)
    matrix[:3, 3] = position
    return matrix


def matrix_to_position_quaternion(
    matrix: np.ndarray,
) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """(4, 4) pose -> ((x, y, z), (qx, qy, qz, qw)) as Python floats, the Pose field values."""
    m = np.asarray(matrix, dtype=float)
    qx, qy, qz, qw = Rotation.from_matrix(m[:3, :3]).as_quat()
    position = (float(m[0, 3]), float(m[1, 3]), float(m[2, 3]))
    return position, (float(qx), float(qy), float(qz), float(qw))


def _fmt(values: np.ndarray) -> str:
    return '(' + ', '.join(f'{v:.6g}' if math.isfinite(v) else str(v) for v in values) + ')'
