"""Builds the launch description of a profile from the shared node graph (``openvla_ros.graph``).

``launch`` and ``launch_ros`` are imported inside the functions: they exist on ROS machines only,
and the rest of the package must import without them.
"""

from __future__ import annotations

from openvla_ros.graph import build_graph, GraphArgs, LAUNCH_ARGUMENTS
from openvla_ros.profiles import load_profile

__all__ = ['generate_profile_launch_description']

PACKAGE = 'openvla_ros'


def robot_description(robot: str, base_frame: str) -> str:
    """The URDF of a simulated arm, built from the same kinematics the control core uses."""
    from openvla_ros.control.kinematics import get_kinematics  # noqa: PLC0415
    from openvla_ros.control.urdf import urdf_from_kinematics  # noqa: PLC0415

    return urdf_from_kinematics(get_kinematics(robot), base_link=base_frame)


def rviz_config(robot_name: str) -> str:
    """rviz/openvla.rviz with the robot description topic of this robot, as a temporary file."""
    import tempfile  # noqa: PLC0415

    from openvla_ros.profiles import share_dir  # noqa: PLC0415

    text = (share_dir() / 'rviz' / 'openvla.rviz').read_text()
    text = text.replace('/wx250s/robot_description', f'/{robot_name}/robot_description')
    with tempfile.NamedTemporaryFile('w', suffix='.rviz', prefix='openvla_', delete=False) as f:
        f.write(text)
    return f.name


def _launch_setup(context, profile: str):
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution  # noqa: PLC0415
    from launch_ros.actions import Node  # noqa: PLC0415
    from launch_ros.substitutions import FindPackageShare  # noqa: PLC0415

    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in LAUNCH_ARGUMENTS}
    args = GraphArgs.from_strings({'profile': profile, **values})
    profile_yaml = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', f'{profile}.yaml'])
    actions = []
    for spec in build_graph(args):
        actions.append(
            Node(
                package=PACKAGE,
                executable=spec.executable,
                name=spec.name,
                output='screen',
                emulate_tty=True,
                parameters=[profile_yaml, spec.parameters],
                remappings=list(spec.remappings),
            )
        )
    prof = load_profile(profile)
    robot, base_frame = str(prof.get('robot')), str(prof.get('base_frame'))
    robot_name = args.robot_name or robot
    if args.sim:
        # The simulator has no vendor description: publish one built from the kinematics, so
        # rviz shows the arm and TF has its links (joint_states come from the sim node).
        actions.append(
            Node(
                package='robot_state_publisher',
                executable='robot_state_publisher',
                namespace=robot_name,
                output='log',
                parameters=[{'robot_description': robot_description(robot, base_frame)}],
            )
        )
    if args.use_rviz:
        actions.append(
            Node(
                package='rviz2',
                executable='rviz2',
                name='rviz2',
                output='log',
                arguments=['-d', rviz_config(robot_name), '-f', base_frame],
            )
        )
    return actions


def generate_profile_launch_description(profile: str):
    """The LaunchDescription of one profile: its arguments, then the graph built at launch."""
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
