"""The driver interfaces, in one table: their names, the arms each drives, whether the simulator
serves it, and each arm's default.

Everything that names an interface reads it from here: the adapter (``AdapterConfig``), the
adapter node's ``interface`` parameter, the simulator, the node graph and its launch argument.
Plain data, no imports: the launch files load it through ``openvla_ros.bringup.graph``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    'DEFAULT_INTERFACE',
    'FRANKA_GRIPPER_INTERFACES',
    'INTERFACE_TABLE',
    'INTERFACES',
    'SIM_INTERFACES',
    'DriverInterface',
    'driver_interface',
    'interfaces_for',
]

_INTERBOTIX = ('wx250s',)
_FRANKA = ('panda', 'fr3')


@dataclass(frozen=True)
class DriverInterface:
    """One driver interface.

    Attributes:
        name: the value of the ``interface`` parameter / launch argument.
        robots: the arm models (``openvla_ros.control.kinematics``) it drives.
        hardware: those arms in words, for error messages.
        simulated: True when the simulator (``sim_node``) serves it.
        driver: what it talks to.
    """

    name: str
    robots: tuple[str, ...]
    hardware: str
    simulated: bool
    driver: str


INTERFACE_TABLE: tuple[DriverInterface, ...] = (
    DriverInterface(
        name='xs_sdk',
        robots=_INTERBOTIX,
        hardware='Interbotix arms (wx250s)',
        simulated=True,
        driver='Interbotix xs_sdk: JointGroupCommand (IK), gripper JointSingleCommand in pwm',
    ),
    DriverInterface(
        name='ros2_control',
        robots=_INTERBOTIX,
        hardware='Interbotix arms (wx250s)',
        simulated=True,
        driver='Interbotix ros2_control: arm and gripper JointTrajectoryController (IK)',
    ),
    DriverInterface(
        name='franka_impedance',
        robots=_FRANKA,
        hardware='a Franka robot (panda, fr3)',
        simulated=True,
        driver='franka_ros2 Cartesian impedance equilibrium pose, franka_gripper actions',
    ),
    DriverInterface(
        name='franka_jtc',
        robots=_FRANKA,
        hardware='a Franka robot (panda, fr3)',
        simulated=True,
        driver='franka_ros2 JointTrajectoryController (IK), franka_gripper actions',
    ),
    DriverInterface(
        name='servo',
        robots=_INTERBOTIX + _FRANKA,
        hardware='any arm with a MoveIt config',
        simulated=False,
        driver='MoveIt Servo: TwistStamped toward the target, no gripper',
    ),
)
#: Every interface name, in the table's order.
INTERFACES: tuple[str, ...] = tuple(i.name for i in INTERFACE_TABLE)
#: The interfaces the simulator serves.
SIM_INTERFACES: tuple[str, ...] = tuple(i.name for i in INTERFACE_TABLE if i.simulated)
#: The interface of each arm when none is given.
DEFAULT_INTERFACE: dict[str, str] = {
    'wx250s': 'xs_sdk',
    'panda': 'franka_impedance',
    'fr3': 'franka_impedance',
}
#: How the franka_* interfaces drive the gripper: franka_msgs move/grasp or control_msgs
#: GripperCommand.
FRANKA_GRIPPER_INTERFACES: tuple[str, ...] = ('franka_actions', 'gripper_action')


def driver_interface(name: str) -> DriverInterface:
    """The table row of ``name``.

    Raises:
        ValueError: an unknown interface (the message lists the known ones).
    """
    for row in INTERFACE_TABLE:
        if row.name == name:
            return row
    raise ValueError(f'unknown interface {name!r}; known: {", ".join(INTERFACES)}')


def interfaces_for(robot: str) -> tuple[str, ...]:
    """The interfaces that drive ``robot``, in the table's order."""
    return tuple(i.name for i in INTERFACE_TABLE if robot in i.robots)
