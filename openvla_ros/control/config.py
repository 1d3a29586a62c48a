"""Configuration dataclasses of the control core, validated when they are built.

The robot profiles (``config/<profile>.yaml``) have a ``limiter:`` and a ``safety:`` section whose
keys are exactly the field names below; units are in the field comments. ``from_dict`` rejects
unknown keys (a renamed key must not be ignored silently) and ``__post_init__`` rejects bad values,
naming field, value and limit.

WidowX 250 / BridgeData V2 values (OpenVLA's own evaluation), used in the tests::

    safety:
      workspace_low: [0.1, -0.20, -0.01]     # [m]
      workspace_high: [0.45, 0.25, 0.30]     # [m]
      orientation_low: [-3.1416, -3.1416, -1.57]   # [rad] Euler 'xyz' of R_nominal^T R
      orientation_high: [3.1416, 3.1416, 1.57]     # [rad]
    limiter:
      # the policy runs at 5 Hz (chunk dt = 0.2 s); Bridge raw actions are clipped to
      # [-0.05, 0.05] m and [-0.25, 0.25] rad per step (see actions.BRIDGE_ACTION_LOW/HIGH)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import dataclass, field
import math
from typing import Any, TypeVar

import numpy as np

from openvla_ros.control.errors import ConfigError

__all__ = [
    'BOUNDS_KEYS',
    'MERGE_POLICIES',
    'SAFETY_MODES',
    'LimiterConfig',
    'PoseBounds',
    'SafetyConfig',
    'WorkspaceBox',
]

# The keys of a profile's ``safety:`` mapping that define the safe set (box and orientation). The
# profiles keep them in the shared ``/**`` section, so that the limiter and the monitor read the
# same numbers (one source of truth).
BOUNDS_KEYS = (
    'workspace_low',
    'workspace_high',
    'orientation_nominal_rpy',
    'orientation_low',
    'orientation_high',
)

# Names of the chunk merge policies of the rate limiter (see rate_limiter.py for their meaning).
MERGE_POLICIES = ('append', 'latest_only', 'weighted_average')

# 'clip': a target beyond a limit is clipped onto it and passes (state LIMITED).
# 'reject': a target beyond a limit is replaced by the hold pose (state HOLD).
SAFETY_MODES = ('clip', 'reject')

_T = TypeVar('_T')


def _from_dict(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """Build dataclass ``cls`` from a mapping, refusing unknown and missing keys by name."""
    if not isinstance(data, Mapping):
        raise ConfigError(f'{cls.__name__}: expected a mapping, got {type(data).__name__}')
    fields = [f for f in dataclasses.fields(cls) if f.init]
    known = {f.name for f in fields}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f'{cls.__name__}: unknown key(s) {", ".join(map(repr, unknown))}; '
            f'known keys: {", ".join(sorted(known))}'
        )
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f'{cls.__name__}: missing required key(s) {", ".join(missing)}')
    return cls(**dict(data))


def _number(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(f'{owner}.{name} = {value!r}: expected a number')
    value = float(value)
    if math.isnan(value):
        raise ConfigError(f'{owner}.{name} = nan: expected a number')
    return value


def _positive(owner: str, name: str, value: Any, *, allow_inf: bool = False) -> float:
    number = _number(owner, name, value)
    if math.isinf(number) and not allow_inf:
        raise ConfigError(f'{owner}.{name} = {number}: must be finite')
    if number <= 0.0:
        raise ConfigError(f'{owner}.{name} = {number}: must be > 0')
    return number


def _non_negative(owner: str, name: str, value: Any) -> float:
    number = _number(owner, name, value)
    if not math.isfinite(number):
        raise ConfigError(f'{owner}.{name} = {number}: must be finite')
    if number < 0.0:
        raise ConfigError(f'{owner}.{name} = {number}: must be >= 0')
    return number


def _vector3(owner: str, name: str, value: Any) -> tuple[float, float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ConfigError(f'{owner}.{name} = {value!r}: expected a list of 3 numbers')
    if len(value) != 3:
        raise ConfigError(
            f'{owner}.{name} = {list(value)!r}: expected 3 numbers, got {len(value)}'
        )
    numbers = []
    for axis, item in zip('xyz', value):
        number = _number(owner, f'{name}[{axis}]', item)
        if not math.isfinite(number):
            raise ConfigError(f'{owner}.{name}[{axis}] = {number}: must be finite')
        numbers.append(number)
    return (numbers[0], numbers[1], numbers[2])


def _integer(owner: str, name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f'{owner}.{name} = {value!r}: expected an integer')
    if int(value) < minimum:
        raise ConfigError(f'{owner}.{name} = {value}: must be >= {minimum}')
    return int(value)


@dataclass(frozen=True)
class WorkspaceBox:
    """Axis-aligned box of allowed tool-centre-point positions in the arm's base frame [m]."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __post_init__(self) -> None:
        low = _vector3('WorkspaceBox', 'low', self.low)
        high = _vector3('WorkspaceBox', 'high', self.high)
        for axis, lo, hi in zip('xyz', low, high):
            if lo >= hi:
                raise ConfigError(f'WorkspaceBox.low[{axis}] = {lo} must be < high[{axis}] = {hi}')
        object.__setattr__(self, 'low', low)
        object.__setattr__(self, 'high', high)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkspaceBox:
        """Build a box from ``{'low': [x, y, z], 'high': [x, y, z]}``.

        Args:
            data: the mapping.

        Raises:
            ConfigError: a key is unknown or missing, or a value is invalid.
        """
        return _from_dict(cls, data)

    def contains(self, position: np.ndarray, *, tolerance: float = 0.0) -> bool:
        """Whether ``position`` (3,) lies inside the box (enlarged by ``tolerance`` [m])."""
        p = np.asarray(position, dtype=float)
        if not np.all(np.isfinite(p)):
            return False
        return bool(
            np.all(p >= np.asarray(self.low) - tolerance)
            and np.all(p <= np.asarray(self.high) + tolerance)
        )

    def clip(self, position: np.ndarray) -> np.ndarray:
        """Return ``position`` (3,) clipped into the box."""
        return np.clip(np.asarray(position, dtype=float), self.low, self.high)


@dataclass(frozen=True)
class PoseBounds:
    """The safe set of end-effector poses: the workspace box and the orientation bounds.

    Orientation bounds are on the Euler 'xyz' angles of ``R_nominal^T R``. One implementation of
    "clip a pose into the safe set" serves the rate limiter (whose goal never leaves the set) and
    the safety monitor (the independent last gate).

    Clipping is *anchored*: per axis the allowed interval is the bound enlarged to include the
    anchor (the previous safe pose). Inside the set this is the plain clip; for an arm that starts
    outside it, motion back toward the set passes and motion further out is stopped, so an anchor
    outside the set is never pulled onto it in one jump.
    """

    box: WorkspaceBox
    nominal_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    low: tuple[float, float, float] = (-math.pi, -math.pi, -math.pi)
    high: tuple[float, float, float] = (math.pi, math.pi, math.pi)

    @property
    def nominal(self) -> np.ndarray:
        """(3, 3) nominal orientation."""
        from scipy.spatial.transform import Rotation  # noqa: PLC0415

        return Rotation.from_euler('xyz', self.nominal_rpy).as_matrix()

    def rpy(self, rot: np.ndarray) -> np.ndarray:
        """Euler 'xyz' angles [rad] of ``R_nominal^T rot``."""
        from scipy.spatial.transform import Rotation  # noqa: PLC0415

        return Rotation.from_matrix(self.nominal.T @ np.asarray(rot, dtype=float)).as_euler('xyz')

    def _intervals(
        self, low: np.ndarray, high: np.ndarray, anchor: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if anchor is None:
            return low, high
        return np.minimum(low, anchor), np.maximum(high, anchor)

    def clip_position(self, position: np.ndarray, anchor: np.ndarray | None = None) -> np.ndarray:
        """``position`` (3,) clipped into the box, enlarged per axis to include ``anchor``."""
        low, high = self._intervals(
            np.asarray(self.box.low), np.asarray(self.box.high),
            None if anchor is None else np.asarray(anchor, dtype=float),
        )
        return np.clip(np.asarray(position, dtype=float), low, high)

    def clip_rotation(self, rot: np.ndarray, anchor: np.ndarray | None = None) -> np.ndarray:
        """``rot`` (3, 3) with its relative Euler angles clipped to the bounds (enlarged to include
        those of the ``anchor`` rotation)."""
        from scipy.spatial.transform import Rotation  # noqa: PLC0415

        rpy = self.rpy(rot)
        low, high = self._intervals(
            np.asarray(self.low), np.asarray(self.high),
            None if anchor is None else self.rpy(anchor),
        )
        clipped = np.clip(rpy, low, high)
        if np.array_equal(clipped, rpy):
            return np.asarray(rot, dtype=float).copy()
        return self.nominal @ Rotation.from_euler('xyz', clipped).as_matrix()

    def clip(self, pose: np.ndarray, anchor: np.ndarray | None = None) -> np.ndarray:
        """``pose`` (4, 4) with position and orientation clipped (anchored on ``anchor``)."""
        p = np.asarray(pose, dtype=float)
        a = None if anchor is None else np.asarray(anchor, dtype=float)
        out = np.eye(4)
        out[:3, :3] = self.clip_rotation(p[:3, :3], None if a is None else a[:3, :3])
        out[:3, 3] = self.clip_position(p[:3, 3], None if a is None else a[:3, 3])
        return out

    def contains(self, pose: np.ndarray, *, tolerance: float = 1e-9) -> bool:
        """Whether ``pose`` (4, 4) lies inside the box and the orientation bounds."""
        p = np.asarray(pose, dtype=float)
        if not self.box.contains(p[:3, 3], tolerance=tolerance):
            return False
        rpy = self.rpy(p[:3, :3])
        return bool(
            np.all(rpy >= np.asarray(self.low) - tolerance)
            and np.all(rpy <= np.asarray(self.high) + tolerance)
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PoseBounds:
        """From the ``BOUNDS_KEYS`` of a ``safety:`` mapping (other keys are ignored).

        Raises:
            ConfigError: a bound is missing or invalid.
        """
        values = {k: data[k] for k in BOUNDS_KEYS if k in data}
        return SafetyConfig.from_dict(values).bounds


@dataclass
class LimiterConfig:
    """Settings of the action-chunk rate limiter (``limiter:`` section of a profile).

    Velocity, acceleration and jerk limits hold per axis: each Cartesian axis of the
    translation, and each base-frame component of the rotation between consecutive outputs (so
    the norm may reach sqrt(3) times the limit; the safety monitor bounds the norm of each step).
    """

    control_rate: float = 50.0  # [Hz] rate of step() calls (controller period = 1 / rate)
    max_linear_velocity: float = 0.3  # [m/s] per axis
    max_linear_acceleration: float = 2.0  # [m/s^2] per axis
    max_linear_jerk: float = 40.0  # [m/s^3] per axis; inf = acceleration-limited only
    max_angular_velocity: float = 1.5  # [rad/s] per axis
    max_angular_acceleration: float = 10.0  # [rad/s^2] per axis
    max_angular_jerk: float = 200.0  # [rad/s^3] per axis; inf = acceleration-limited only
    max_gripper_velocity: float = 5.0  # [1/s] normalized opening per second
    max_chunk_age: float = 1.0  # [s] chunks whose image is older than this on arrival are dropped
    latency_compensation: float = 0.0  # [s] added to every action's due time (stamp + i*dt + this)
    merge_policy: str = 'latest_only'  # one of MERGE_POLICIES
    merge_weight_old: float = 0.3  # weighted_average: weight of the pending (old) action
    merge_weight_new: float = 0.7  # weighted_average: weight of the new action; old + new == 1
    clip_actions: bool = True  # clip raw actions to the action space's bounds (Bridge clip)
    max_queue_length: int = 256  # [actions] a chunk that would overflow the queue is dropped
    history_length: int = 4096  # [actions] consumed/dropped action records kept for inspection

    def __post_init__(self) -> None:
        owner = 'LimiterConfig'
        self.control_rate = _positive(owner, 'control_rate', self.control_rate)
        self.max_linear_velocity = _positive(
            owner, 'max_linear_velocity', self.max_linear_velocity
        )
        self.max_linear_acceleration = _positive(
            owner, 'max_linear_acceleration', self.max_linear_acceleration
        )
        self.max_linear_jerk = _positive(
            owner, 'max_linear_jerk', self.max_linear_jerk, allow_inf=True
        )
        self.max_angular_velocity = _positive(
            owner, 'max_angular_velocity', self.max_angular_velocity
        )
        self.max_angular_acceleration = _positive(
            owner, 'max_angular_acceleration', self.max_angular_acceleration
        )
        self.max_angular_jerk = _positive(
            owner, 'max_angular_jerk', self.max_angular_jerk, allow_inf=True
        )
        self.max_gripper_velocity = _positive(
            owner, 'max_gripper_velocity', self.max_gripper_velocity
        )
        self.max_chunk_age = _positive(owner, 'max_chunk_age', self.max_chunk_age)
        self.latency_compensation = _non_negative(
            owner, 'latency_compensation', self.latency_compensation
        )
        if self.merge_policy not in MERGE_POLICIES:
            raise ConfigError(
                f'{owner}.merge_policy = {self.merge_policy!r}: '
                f'expected one of {", ".join(MERGE_POLICIES)}'
            )
        self.merge_weight_old = _non_negative(owner, 'merge_weight_old', self.merge_weight_old)
        self.merge_weight_new = _non_negative(owner, 'merge_weight_new', self.merge_weight_new)
        total = self.merge_weight_old + self.merge_weight_new
        if abs(total - 1.0) > 1e-9:
            raise ConfigError(f'{owner}.merge_weight_old + merge_weight_new = {total}: must be 1')
        if not isinstance(self.clip_actions, bool):
            raise ConfigError(f'{owner}.clip_actions = {self.clip_actions!r}: expected a bool')
        self.max_queue_length = _integer(
            owner, 'max_queue_length', self.max_queue_length, minimum=1
        )
        self.history_length = _integer(owner, 'history_length', self.history_length, minimum=1)

    @property
    def period(self) -> float:
        """The controller period [s]."""
        return 1.0 / self.control_rate

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LimiterConfig:
        """Build the config from a profile's ``limiter:`` mapping.

        Args:
            data: keys are the field names of this class.

        Raises:
            ConfigError: a key is unknown, or a value is invalid (the
                message names field, value, limit).
        """
        return _from_dict(cls, data)


@dataclass
class SafetyConfig:
    """Settings of the safety monitor (``safety:`` section of a profile).

    The workspace has no default on purpose: no box fits every robot. The step limits are per
    control period of *real time*: a target that arrives ``t`` seconds after the previous output
    may move ``min(t, period) / period`` times the step, so a burst of targets cannot move the arm
    faster than ``max_step_* * control_rate``.
    """

    workspace_low: tuple[float, float, float]  # [m] x, y, z lower corner in the base frame
    workspace_high: tuple[float, float, float]  # [m] x, y, z upper corner in the base frame
    # [rad] nominal orientation (Euler 'xyz') that the orientation bounds are relative to
    orientation_nominal_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # [rad] lower bounds on the Euler 'xyz' angles of R_nominal^T @ R (R: target orientation)
    orientation_low: tuple[float, float, float] = (-math.pi, -math.pi, -math.pi)
    # [rad] upper bounds on the Euler 'xyz' angles of R_nominal^T @ R
    orientation_high: tuple[float, float, float] = (math.pi, math.pi, math.pi)
    max_step_translation: float = 0.01  # [m] per control period, norm, relative to the last output
    max_step_rotation: float = 0.05  # [rad] per control period, geodesic angle
    max_step_gripper: float = 0.1  # [1] normalized opening per control period
    mode: str = 'clip'  # 'clip' or 'reject' (see SAFETY_MODES)
    image_timeout: float = 1.0  # [s] camera watchdog; inf disables it
    joint_state_timeout: float = 0.5  # [s] joint-state watchdog; inf disables it
    command_timeout: float = 0.5  # [s] command watchdog (checked by tick()); inf disables it
    control_rate: float = 50.0  # [Hz] rate of filter()/tick() calls
    ik_failures_before_fault: int = 0  # consecutive IK failures that latch FAULT; 0 = only HOLD
    # [m] commanded-vs-measured TCP distance that holds (the command re-anchors on the measured
    # pose); inf disables it
    max_tracking_error: float = math.inf
    # [rad] commanded-vs-measured TCP rotation angle that holds; inf disables it
    max_tracking_rotation: float = math.inf
    # [s] with an instruction active, no chunk and no policy status for this long holds; inf
    # disables it
    policy_timeout: float = math.inf
    workspace: WorkspaceBox = field(init=False, repr=False)
    bounds: PoseBounds = field(init=False, repr=False)

    def __post_init__(self) -> None:
        owner = 'SafetyConfig'
        self.workspace = WorkspaceBox(self.workspace_low, self.workspace_high)
        self.workspace_low = self.workspace.low
        self.workspace_high = self.workspace.high
        self.orientation_nominal_rpy = _vector3(
            owner, 'orientation_nominal_rpy', self.orientation_nominal_rpy
        )
        self.orientation_low = _vector3(owner, 'orientation_low', self.orientation_low)
        self.orientation_high = _vector3(owner, 'orientation_high', self.orientation_high)
        limit = math.pi + 1e-6
        for axis, lo, hi in zip(
            ('roll', 'pitch', 'yaw'), self.orientation_low, self.orientation_high
        ):
            if lo < -limit:
                raise ConfigError(f'{owner}.orientation_low[{axis}] = {lo}: must be >= -pi')
            if hi > limit:
                raise ConfigError(f'{owner}.orientation_high[{axis}] = {hi}: must be <= pi')
            if lo >= hi:
                raise ConfigError(
                    f'{owner}.orientation_low[{axis}] = {lo} must be < orientation_high = {hi}'
                )
        self.max_step_translation = _positive(
            owner, 'max_step_translation', self.max_step_translation
        )
        self.max_step_rotation = _positive(owner, 'max_step_rotation', self.max_step_rotation)
        if self.max_step_rotation > math.pi:
            raise ConfigError(
                f'{owner}.max_step_rotation = {self.max_step_rotation}: must be <= pi'
            )
        self.max_step_gripper = _positive(owner, 'max_step_gripper', self.max_step_gripper)
        if self.mode not in SAFETY_MODES:
            raise ConfigError(
                f'{owner}.mode = {self.mode!r}: expected one of {", ".join(SAFETY_MODES)}'
            )
        self.image_timeout = _positive(owner, 'image_timeout', self.image_timeout, allow_inf=True)
        self.joint_state_timeout = _positive(
            owner, 'joint_state_timeout', self.joint_state_timeout, allow_inf=True
        )
        self.command_timeout = _positive(
            owner, 'command_timeout', self.command_timeout, allow_inf=True
        )
        self.control_rate = _positive(owner, 'control_rate', self.control_rate)
        self.ik_failures_before_fault = _integer(
            owner, 'ik_failures_before_fault', self.ik_failures_before_fault, minimum=0
        )
        self.max_tracking_error = _positive(
            owner, 'max_tracking_error', self.max_tracking_error, allow_inf=True
        )
        self.max_tracking_rotation = _positive(
            owner, 'max_tracking_rotation', self.max_tracking_rotation, allow_inf=True
        )
        self.policy_timeout = _positive(owner, 'policy_timeout', self.policy_timeout,
                                        allow_inf=True)
        self.bounds = PoseBounds(
            self.workspace, self.orientation_nominal_rpy, self.orientation_low,
            self.orientation_high,
        )

    @property
    def period(self) -> float:
        """The control period [s]."""
        return 1.0 / self.control_rate

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SafetyConfig:
        """Build the config from a profile's ``safety:`` mapping.

        Args:
            data: keys are the init field names of this class
                (``workspace`` is derived, not a key).

        Raises:
            ConfigError: a key is unknown or missing, or a value is invalid.
        """
        return _from_dict(cls, data)


def field_descriptions(cls: type) -> dict[str, str]:
    """Each field's trailing comment in the class source (``name: type = default  # comment``).

    The comments next to the fields are the one place their units and meaning are written; the
    ROS parameter descriptors and docs/nodes.md are built from them.
    """
    import inspect  # noqa: PLC0415
    import re  # noqa: PLC0415

    out: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith('#'):
            pending.append(stripped.lstrip('#').strip())
            continue
        match = re.match(r'^(\w+)\s*:\s*[^=#]+(?:=[^#]*)?(?:#\s*(.*))?$', stripped)
        if match and match.group(1) in cls.__dataclass_fields__:
            text = ' '.join(pending + ([match.group(2)] if match.group(2) else []))
            out[match.group(1)] = text.strip()
        pending = []
    return out
