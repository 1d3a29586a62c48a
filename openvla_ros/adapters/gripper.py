"""Normalized gripper opening (0 = closed .. 1 = open) -> each driver's gripper units.

Why a decision and not only a mapping for the Franka Hand: its ``move`` action stops (and fails) on
contact, so closing on an object needs ``grasp`` with a force and a tolerance; and every new goal
pre-empts the running one, so a goal is sent only when the command changes meaningfully (the
policy repeats the same value at 5-15 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass
import math

from openvla_ros.adapters.values import FrankaGripperValues, GripperCommandValues

INTERBOTIX_GRIPPER_PWM = (
    250.0  # [pwm] effort of the Interbotix gripper in pwm mode (open positive)
)
WX250S_FINGER_RANGE = (0.015, 0.037)  # [m] left_finger position closed .. open (URDF)
FRANKA_MAX_WIDTH = 0.08  # [m] Franka Hand


def check_opening(opening: float) -> float:
    """The opening clipped to [0, 1].

    Raises:
        ValueError: the opening is not finite.
    """
    value = float(opening)
    if not math.isfinite(value):
        raise ValueError(f'gripper opening must be finite, got {opening!r}')
    return min(max(value, 0.0), 1.0)


def interbotix_gripper_pwm(
    opening: float, *, effort: float = INTERBOTIX_GRIPPER_PWM, threshold: float = 0.5
) -> float:
    """Interbotix gripper pwm command: +effort opens, -effort closes (the Bridge gripper is
    binary).

    Raises:
        ValueError: non-finite opening, or effort not in (0, 885] (the XM430 pwm limit).
    """
    if not (0.0 < effort <= 885.0):
        raise ValueError(f'gripper effort {effort!r} must be in (0, 885] pwm')
    return effort if check_opening(opening) >= threshold else -effort


def finger_position(
    opening: float, finger_range: tuple[float, float] = WX250S_FINGER_RANGE
) -> float:
    """One finger's position [m] (e.g. Interbotix ``left_finger`` for the ros2_control gripper
    controller).

    Raises:
        ValueError: non-finite opening.
    """
    lo, hi = finger_range
    return lo + check_opening(opening) * (hi - lo)


def franka_width(opening: float, max_width: float = FRANKA_MAX_WIDTH) -> float:
    """Franka Hand width [m] = opening * max width.

    Raises:
        ValueError: non-finite opening.
    """
    return check_opening(opening) * max_width


def gripper_command_position(width: float) -> float:
    """``control_msgs/GripperCommand.position`` for a Franka width (width = 2 * position)."""
    return 0.5 * float(width)


@dataclass(frozen=True)
class FrankaGripperConfig:
    """How openings become Franka gripper goals.

    Attributes:
        max_width: [m] width at opening 1.
        speed: [m/s] of move and grasp.
        force: [N] grasp force.
        grasp_threshold: an opening below it means "grasp", at or above it "move".
        epsilon_inner: [m] grasp succeeds if the object is at most this much narrower than the
            grasp width.
        epsilon_outer: [m] ... and at most this much wider (default: the whole stroke, any object).
        min_width_change: [m] a new move goal only when the width changes by more than this.
        max_effort: [N] of a control_msgs GripperCommand goal.
    """

    max_width: float = FRANKA_MAX_WIDTH
    speed: float = 0.1
    force: float = 20.0
    grasp_threshold: float = 0.5
    epsilon_inner: float = 0.005
    epsilon_outer: float = FRANKA_MAX_WIDTH
    min_width_change: float = 0.005
    max_effort: float = 20.0

    def __post_init__(self) -> None:
        checks = (
            ('max_width', self.max_width, 0.0, 0.2),
            ('speed', self.speed, 0.0, 0.2),
            ('force', self.force, 0.0, 140.0),
            ('grasp_threshold', self.grasp_threshold, 0.0, 1.0),
            ('min_width_change', self.min_width_change, 0.0, 0.08),
        )
        for name, value, lo, hi in checks:
            if not (math.isfinite(value) and lo < value <= hi):
                raise ValueError(f'FrankaGripperConfig.{name} = {value!r} must be in ({lo}, {hi}]')
        if self.epsilon_inner < 0.0 or self.epsilon_outer < 0.0:
            raise ValueError('FrankaGripperConfig epsilons must be >= 0')


def franka_gripper_command(opening: float, config: FrankaGripperConfig) -> FrankaGripperValues:
    """``grasp`` (closing: width 0, force, tolerant epsilon) or ``move`` (opening to a width).

    Raises:
        ValueError: non-finite opening.
    """
    value = check_opening(opening)
    if value < config.grasp_threshold:
        return FrankaGripperValues(
            'grasp',
            value * config.max_width,
            config.speed,
            config.force,
            config.epsilon_inner,
            config.epsilon_outer,
        )
    return FrankaGripperValues('move', value * config.max_width, config.speed)


def gripper_action_command(opening: float, config: FrankaGripperConfig) -> GripperCommandValues:
    """``control_msgs/action/GripperCommand`` goal for an opening.

    Raises:
        ValueError: non-finite opening.
    """
    width = franka_width(opening, config.max_width)
    return GripperCommandValues(gripper_command_position(width), config.max_effort)


def changed_meaningfully(
    new: FrankaGripperValues | GripperCommandValues,
    last: FrankaGripperValues | GripperCommandValues | None,
    min_width_change: float,
) -> bool:
    """Whether ``new`` deserves a new goal after ``last`` (another action, or a width change)."""
    if last is None or type(new) is not type(last):
        return True
    if isinstance(new, FrankaGripperValues) and isinstance(last, FrankaGripperValues):
        if new.action != last.action:
            return True
        if new.action == 'grasp':
            return False  # still closing: a second grasp would only restart it
        return abs(new.width - last.width) > min_width_change
    assert isinstance(new, GripperCommandValues) and isinstance(last, GripperCommandValues)
    return abs(new.position - last.position) * 2.0 > min_width_change


def measured_opening(robot: str, names, positions) -> float | None:
    """The normalized opening (0 = closed .. 1 = open) a joint state measures, or None when it
    has no finger joint of ``robot``. Start-up and resets anchor on it, so that an object held
    through an e-stop is not dropped.

    - wx250s: ``left_finger`` [m] in ``WX250S_FINGER_RANGE`` (Interbotix and the simulator);
    - panda / fr3: ``<robot>_finger_joint1`` (+ ``joint2``) [m]; width = their sum, opening =
      width / ``FRANKA_MAX_WIDTH`` (one finger alone counts twice, the hand is symmetric).
    """
    index = {n: i for i, n in enumerate(names)}

    def position(name: str) -> float | None:
        i = index.get(name)
        if i is None or i >= len(positions):
            return None
        value = float(positions[i])
        return value if math.isfinite(value) else None

    if robot == 'wx250s':
        left = position('left_finger')
        if left is None:
            return None
        lo, hi = WX250S_FINGER_RANGE
        return min(max((left - lo) / (hi - lo), 0.0), 1.0)
    first = position(f'{robot}_finger_joint1')
    if first is None:
        return None
    second = position(f'{robot}_finger_joint2')
    width = first + (first if second is None else second)
    return min(max(width / FRANKA_MAX_WIDTH, 0.0), 1.0)
