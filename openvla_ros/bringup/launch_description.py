"""Builds the launch description of a profile from the shared node graph
(``openvla_ros.bringup.graph``).

Two layers, so that what a launch starts is decided by plain code tested without ``launch``:

- ``plan_launch`` decides: the graph's nodes, whether robot_state_publisher and rviz2 start
  (each only where it is installed: they are optional), the warnings to log, and the errors that
  stop a launch before anything starts.
- ``generate_profile_launch_description`` translates a plan into ``launch_ros`` actions at launch
  time. ``launch`` and ``launch_ros`` are imported inside the functions: they exist on ROS
  machines only, and the rest of the package must import without them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from openvla_ros.bringup.graph import build_graph, GraphArgs, LAUNCH_ARGUMENTS, NodeSpec
from openvla_ros.bringup.profiles import load_profile, share_dir

__all__ = [
    'LaunchPlan',
    'LaunchPlanError',
    'generate_profile_launch_description',
    'package_installed',
    'plan_launch',
]

PACKAGE = 'openvla_ros'
ROBOT_STATE_PUBLISHER = 'robot_state_publisher'
RVIZ = 'rviz2'
# What a user loses where robot_state_publisher is missing: one warning says it.
NO_ROBOT_STATE_PUBLISHER = (
    'robot_state_publisher is not installed: no arm model in rviz and no TF for the simulated '
    "arm's links (install ros-$ROS_DISTRO-robot-state-publisher); the rest of the graph runs"
)
NO_RVIZ = (
    'use_rviz:=true, but rviz2 is not installed: install ros-$ROS_DISTRO-rviz2 or launch with '
    'use_rviz:=false (nothing was started)'
)


class LaunchPlanError(ValueError):
    """A launch that cannot do what was asked; one line that says what and how to fix it."""


def package_installed(name: str) -> bool:
    """Whether ``name`` is on the ament index, the way launch_ros resolves a Node's package."""
    try:
        from ament_index_python.packages import (  # noqa: PLC0415
            get_package_prefix,
            PackageNotFoundError,
        )
    except ImportError:
        return False
    try:
        get_package_prefix(name)
    except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH is not set
        return False
    return True


@dataclass(frozen=True)
class LaunchPlan:
    """What one launch of a profile starts.

    Attributes:
        args: the launch arguments, typed.
        nodes: the graph's nodes (package openvla_ros).
        profile_yaml: the parameter file every node of the graph gets.
        robot: the robot model; robot_name: the namespace of its topics; base_frame: its base.
        robot_state_publisher: start robot_state_publisher (sim:=true, where it is installed).
        rviz: start rviz2.
        warnings: what to log once, before the nodes start.
    """

    args: GraphArgs
    nodes: tuple[NodeSpec, ...]
    profile_yaml: Path
    robot: str
    robot_name: str
    base_frame: str
    robot_state_publisher: bool
    rviz: bool
    warnings: tuple[str, ...]


def plan_launch(
    profile: str,
    values: Mapping[str, str],
    *,
    installed: Callable[[str], bool] = package_installed,
) -> LaunchPlan:
    """Decides what ``ros2 launch openvla_ros <profile>.launch.py <values>`` starts.

    Args:
        profile: the robot profile (``config/<profile>.yaml``).
        values: the launch arguments as text (launch configurations); missing ones take their
            defaults.
        installed: whether a ROS package is installed (default: the ament index).

    Raises:
        LaunchPlanError: use_rviz:=true without rviz2 (refused before anything starts: rviz was
            asked for by name, and a launch that silently drops it looks like a broken rviz).
        ValueError: bad launch arguments (from GraphArgs / build_graph, with what is allowed).
    """
    defaults = {a.name: a.default for a in LAUNCH_ARGUMENTS}
    args = GraphArgs.from_strings({**defaults, **dict(values), 'profile': profile})
    prof = load_profile(profile)
    nodes = tuple(build_graph(args, prof))
    if args.use_rviz and not installed(RVIZ):
        raise LaunchPlanError(NO_RVIZ)
    warnings = []
    # The simulator has no vendor description: robot_state_publisher publishes one built from
    # the kinematics, so rviz shows the arm and TF has its links. The hardware drivers bring
    # their own, so it only starts with sim:=true.
    robot_state_publisher = args.sim and installed(ROBOT_STATE_PUBLISHER)
    if args.sim and not robot_state_publisher:
        warnings.append(NO_ROBOT_STATE_PUBLISHER)
    robot = str(prof.get('robot'))
    return LaunchPlan(
        args=args,
        nodes=nodes,
        profile_yaml=share_dir() / 'config' / f'{profile}.yaml',
        robot=robot,
        robot_name=args.robot_name or robot,
        base_frame=str(prof.get('base_frame')),
        robot_state_publisher=robot_state_publisher,
        rviz=args.use_rviz,
        warnings=tuple(warnings),
    )


def robot_description(robot: str, base_frame: str) -> str:
    """The URDF of a simulated arm, built from the same kinematics the control core uses."""
    from openvla_ros.control.kinematics import get_kinematics  # noqa: PLC0415
    from openvla_ros.control.urdf import urdf_from_kinematics  # noqa: PLC0415

    return urdf_from_kinematics(get_kinematics(robot), base_link=base_frame)


def rviz_config(robot_name: str) -> str:
    """rviz/openvla.rviz with the robot description topic of this robot, as a temporary file."""
    import tempfile  # noqa: PLC0415

    text = (share_dir() / 'rviz' / 'openvla.rviz').read_text()
    text = text.replace('/wx250s/robot_description', f'/{robot_name}/robot_description')
    with tempfile.NamedTemporaryFile('w', suffix='.rviz', prefix='openvla_', delete=False) as f:
        f.write(text)
    return f.name


def _launch_setup(context, profile: str):
    """OpaqueFunction body: the plan of this launch as launch_ros actions (a thin translation)."""
    import launch.logging  # noqa: PLC0415
    from launch.substitutions import LaunchConfiguration  # noqa: PLC0415
    from launch_ros.actions import Node  # noqa: PLC0415

    from openvla_ros.bringup.dds_transport import large_frame_env  # noqa: PLC0415

    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in LAUNCH_ARGUMENTS}
    plan = plan_launch(profile, values)
    logger = launch.logging.get_logger(f'{PACKAGE}.launch')
    for warning in plan.warnings:
        logger.warning(warning)
    actions = [
        Node(
            package=PACKAGE,
            executable=spec.executable,
            name=spec.name,
            output='screen',
            emulate_tty=True,
            parameters=[str(plan.profile_yaml), spec.parameters],
            remappings=list(spec.remappings),
            # camera frames need a larger Fast DDS shared memory than the default 512 KiB
            additional_env=large_frame_env() if spec.large_messages else None,
        )
        for spec in plan.nodes
    ]
    if plan.robot_state_publisher:
        actions.append(
            Node(
                package=ROBOT_STATE_PUBLISHER,
                executable=ROBOT_STATE_PUBLISHER,
                namespace=plan.robot_name,
                output='log',
                parameters=[
                    {
                        'robot_description': robot_description(plan.robot, plan.base_frame),
                        'use_sim_time': plan.args.sim,
                    }
                ],
            )
        )
    if plan.rviz:
        actions.append(
            Node(
                package=RVIZ,
                executable=RVIZ,
                name=RVIZ,
                output='log',
                arguments=['-d', rviz_config(plan.robot_name), '-f', plan.base_frame],
                parameters=[{'use_sim_time': plan.args.sim}],
            )
        )
    return actions


def generate_profile_launch_description(profile: str):
    """The LaunchDescription of one profile: its arguments, then the plan built at launch."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction  # noqa: PLC0415

    from launch import LaunchDescription  # noqa: PLC0415

    declared = []
    for a in LAUNCH_ARGUMENTS:
        kwargs = {'choices': list(a.choices)} if a.choices else {}
        declared.append(
            DeclareLaunchArgument(
                a.name, default_value=a.default, description=a.description, **kwargs
            )
        )
    return LaunchDescription(declared + [OpaqueFunction(function=_launch_setup, args=[profile])])
