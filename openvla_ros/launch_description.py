"""Builds the launch description of a profile from the shared node graph (``openvla_ros.graph``).

``launch`` and ``launch_ros`` are imported inside the functions: they exist on ROS machines only,
and the rest of the package must import without them.
"""

from __future__ import annotations

from openvla_ros.graph import build_graph, GraphArgs, LAUNCH_ARGUMENTS
from openvla_ros.profiles import load_profile

__all__ = ['generate_profile_launch_description']

PACKAGE = 'openvla_ros'


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
    if args.use_rviz:
        rviz_config = PathJoinSubstitution([FindPackageShare(PACKAGE), 'rviz', 'openvla.rviz'])
        base_frame = str(load_profile(profile).get('base_frame'))
        actions.append(
            Node(
                package='rviz2',
                executable='rviz2',
                name='rviz2',
                output='log',
                arguments=['-d', rviz_config, '-f', base_frame],
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
