"""Pose error -> MoveIt Servo twist: the velocity that closes the error in one control period,
clipped.

Servo integrates the twist itself and halts after its ``incoming_command_timeout`` (0.1 s), so the
node republishes the twist faster than the policy rate; this function is what it republishes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from openvla_ros.adapters.values import TwistValues


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v * (limit / norm) if norm > limit else v


def servo_twist(
    target: np.ndarray,
    measured: np.ndarray,
    *,
    period: float,
    max_linear_speed: float,
    max_angular_speed: float,
    frame_id: str,
) -> TwistValues:
    """Twist (base-frame axes, about the TCP point) from ``measured`` toward ``target`` over
    ``period``.

    Args:
        target: (4, 4) TCP target.
        measured: (4, 4) TCP pose now (FK of the measured joints).
        period: [s] time in which the error should close.
        max_linear_speed: [m/s] clip of |linear|.
        max_angular_speed: [rad/s] clip of |angular|.
        frame_id: the planning (base) frame; Servo on Jazzy rejects an empty one.

    Raises:
        ValueError: period or a speed not finite and > 0, or a non-finite pose.
    """
    for name, value in (
        ('period', period),
        ('max_linear_speed', max_linear_speed),
        ('max_angular_speed', max_angular_speed),
    ):
        if not (math.isfinite(value) and value > 0.0):
            raise ValueError(f'{name} = {value!r} must be finite and > 0')
    t = np.asarray(target, dtype=float)
    m = np.asarray(measured, dtype=float)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(m))):
        raise ValueError('target and measured poses must be finite')
    linear = _clip_norm((t[:3, 3] - m[:3, 3]) / period, max_linear_speed)
    rotvec = Rotation.from_matrix(t[:3, :3] @ m[:3, :3].T).as_rotvec()
    angular = _clip_norm(rotvec / period, max_angular_speed)
    return TwistValues(
        (float(linear[0]), float(linear[1]), float(linear[2])),
        (float(angular[0]), float(angular[1]), float(angular[2])),
        frame_id,
    )


def zero_twist(frame_id: str) -> TwistValues:
    """A stop command."""
    return TwistValues((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), frame_id)
