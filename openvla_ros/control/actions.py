"""Action semantics: how a policy's 7-D action changes the end-effector target.

An action space says how the first six values (a delta) move the previous *target* pose, and how
far they may go (the raw-action clip bounds). The seventh value is an absolute gripper command
whose meaning (which end is open) is the chunk's gripper convention, mapped here to the core's
normalized opening (0 = closed, 1 = open).

``bridge_orig`` (BridgeData V2, OpenVLA's WidowX actions), from docs/design.md::

    p' = p + [dx, dy, dz]
    R' = Rotation.from_euler('xyz', [droll, dpitch, dyaw]).as_matrix() @ R

i.e. rotation about the end-effector point with base-frame axes, integrated on the previous target,
never on the measured pose. ``droid`` uses the same composition after scaling a velocity command in
[-1, 1] to at most 0.075 m and 0.15 rad per step (DROID's ``max_lin_delta`` / ``max_rot_delta``).
"""

from __future__ import annotations

from dataclasses import dataclass
import enum

import numpy as np
from scipy.spatial.transform import Rotation

from openvla_ros.control.errors import UnknownNameError

__all__ = [
    'ACTION_DIM',
    'ACTION_SPACES',
    'BRIDGE_ACTION_HIGH',
    'BRIDGE_ACTION_LOW',
    'ActionSpace',
    'GripperConvention',
    'apply_delta',
    'delta_between',
    'get_action_space',
    'gripper_from_opening',
    'gripper_to_opening',
]

ACTION_DIM = 7

# Raw-action clip bounds of the Bridge environment: [dx, dy, dz] m, [droll, dpitch, dyaw] rad,
# gripper.
BRIDGE_ACTION_LOW = np.array([-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0])
BRIDGE_ACTION_HIGH = np.array([0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0])


class GripperConvention(enum.IntEnum):
    """How to read the gripper value; the numbers are those of msg/ActionChunk.msg."""

    OPEN_IS_ONE = 0  # 1 = open, 0 = closed (bridge_orig, fractal, OpenVLA's droid actions)
    CLOSED_IS_ONE = 1  # 1 = closed, 0 = open (the raw DROID action_dict/gripper_position)
    SIGNED = 2  # +1 = open, -1 = closed (LIBERO evaluation)


def gripper_to_opening(value: float, convention: int) -> float:
    """Map a model's gripper value to the core's normalized opening (0 = closed, 1 = open).

    Args:
        value: the gripper value as the model emits it.
        convention: a ``GripperConvention`` (or its number).

    Returns:
        The opening, clipped to [0, 1]; NaN stays NaN so that callers reject it.

    Raises:
        ValueError: the convention is not known.
    """
    convention = GripperConvention(int(convention))
    v = float(value)
    if convention == GripperConvention.OPEN_IS_ONE:
        opening = v
    elif convention == GripperConvention.CLOSED_IS_ONE:
        opening = 1.0 - v
    else:
        opening = 0.5 * (v + 1.0)
    return float(np.clip(opening, 0.0, 1.0))


def gripper_from_opening(opening: float, convention: int) -> float:
    """Inverse of ``gripper_to_opening``: the value a model in ``convention`` would emit.

    Args:
        opening: normalized opening in [0, 1] (clipped).
        convention: a ``GripperConvention`` (or its number).

    Raises:
        ValueError: the convention is not known.
    """
    convention = GripperConvention(int(convention))
    o = float(np.clip(opening, 0.0, 1.0))
    if convention == GripperConvention.OPEN_IS_ONE:
        return o
    if convention == GripperConvention.CLOSED_IS_ONE:
        return 1.0 - o
    return 2.0 * o - 1.0


@dataclass(frozen=True)
class ActionSpace:
    """How a 7-D action's delta is applied, and the bounds its raw values are clipped to.

    Attributes:
        name: registry name (``ActionChunk.action_space``).
        translation_scale: metres per unit of the raw translation values.
        rotation_scale: radians per unit of the raw rotation values.
        low: (7,) lower clip bound of the raw action (gripper included, in the model's convention).
        high: (7,) upper clip bound.
        default_gripper_convention: the convention this dataset uses.
    """

    name: str
    translation_scale: float
    rotation_scale: float
    low: np.ndarray
    high: np.ndarray
    default_gripper_convention: GripperConvention

    def clip(self, action: np.ndarray) -> np.ndarray:
        """Return the raw action (7,) clipped to ``[low, high]`` (NaN stays NaN)."""
        return np.clip(np.asarray(action, dtype=float), self.low, self.high)

    def apply(self, previous_target: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Apply the delta of ``action`` to ``previous_target`` (4, 4);
        the gripper is ignored here."""
        a = np.asarray(action, dtype=float)
        target = np.asarray(previous_target, dtype=float)
        result = np.eye(4)
        dr = Rotation.from_euler('xyz', a[3:6] * self.rotation_scale).as_matrix()
        result[:3, :3] = dr @ target[:3, :3]
        result[:3, 3] = target[:3, 3] + a[:3] * self.translation_scale
        return result

    def delta_between(self, t_from: np.ndarray, t_to: np.ndarray) -> np.ndarray:
        """The raw delta (6,) that ``apply`` turns ``t_from`` into ``t_to`` with."""
        a = np.asarray(t_from, dtype=float)
        b = np.asarray(t_to, dtype=float)
        dr = b[:3, :3] @ a[:3, :3].T
        rpy = Rotation.from_matrix(dr).as_euler('xyz')
        dp = b[:3, 3] - a[:3, 3]
        return np.concatenate([dp / self.translation_scale, rpy / self.rotation_scale])


ACTION_SPACES: dict[str, ActionSpace] = {
    'bridge_orig': ActionSpace(
        name='bridge_orig',
        translation_scale=1.0,
        rotation_scale=1.0,
        low=BRIDGE_ACTION_LOW.copy(),
        high=BRIDGE_ACTION_HIGH.copy(),
        default_gripper_convention=GripperConvention.OPEN_IS_ONE,
    ),
    'droid': ActionSpace(
        name='droid',
        translation_scale=0.075,
        rotation_scale=0.15,
        low=np.array([-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 0.0]),
        high=np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        # OpenVLA's DROID actions are gripper 1 = open: openvla/openvla
        # prismatic/vla/datasets/rlds/oxe/utils/droid_utils.py (droid_baseact_transform and
        # droid_finetuning_transform) build the action as
        # concat(cartesian_velocity[:, :3], cartesian_velocity[:, 3:6], 1 - gripper_position),
        # inverting the raw dataset's gripper_position (1 = closed).
        default_gripper_convention=GripperConvention.OPEN_IS_ONE,
    ),
}


def get_action_space(name: str) -> ActionSpace:
    """Look up an action space by name.

    Args:
        name: e.g. ``'bridge_orig'``.

    Raises:
        UnknownNameError: (a ValueError) the name is not registered; the
            message lists the known names.
    """
    space = ACTION_SPACES.get(name)
    if space is None:
        raise UnknownNameError(
            f'unknown action space {name!r}; known: {", ".join(sorted(ACTION_SPACES))}'
        )
    return space


def apply_delta(
    previous_target: np.ndarray, action: np.ndarray, action_space: str = 'bridge_orig'
) -> np.ndarray:
    """Apply one action's delta to the previous target pose.

    Args:
        previous_target: (4, 4) previous *target* (not measured) pose, base frame -> TCP.
        action: (7,) or (6,) raw action; the gripper value, if present, is not used.
        action_space: registry name of the semantics.

    Returns:
        The next target (4, 4).

    Raises:
        ValueError: shapes are wrong or the action space is unknown.
    """
    target = np.asarray(previous_target, dtype=float)
    a = np.asarray(action, dtype=float)
    if target.shape != (4, 4):
        raise ValueError(f'previous_target must be (4, 4), got {target.shape}')
    if a.shape not in ((6,), (7,)):
        raise ValueError(f'action must be (6,) or (7,), got {a.shape}')
    return get_action_space(action_space).apply(target, a)


def delta_between(
    t_from: np.ndarray, t_to: np.ndarray, action_space: str = 'bridge_orig'
) -> np.ndarray:
    """The delta (6,) that moves ``t_from`` to ``t_to`` (inverse of ``apply_delta``).

    Used by the scripted expert and dataset recording. Exact for rotations below pi.

    Args:
        t_from: (4, 4) pose.
        t_to: (4, 4) pose.
        action_space: registry name of the semantics.

    Raises:
        ValueError: shapes are wrong or the action space is unknown.
    """
    a = np.asarray(t_from, dtype=float)
    b = np.asarray(t_to, dtype=float)
    if a.shape != (4, 4) or b.shape != (4, 4):
        raise ValueError(f'poses must be (4, 4), got {a.shape} and {b.shape}')
    return get_action_space(action_space).delta_between(a, b)
