"""The node graph of one robot profile, defined once (pure, no rclpy, no launch).

``launch/*.launch.py`` turn it into ``launch_ros`` Node actions; ``openvla_ros.harness.runner``
instantiates the same nodes in one process (tests, ``openvla-ros demo``). Both start from
``GraphArgs`` — the launch arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from openvla_ros.adapters.interfaces import (
    DEFAULT_INTERFACE,
    INTERFACES,
    interfaces_for,
    SIM_INTERFACES,
)
from openvla_ros.bringup.profiles import load_profile, Profile
from openvla_ros.model.choices import QUANTIZE_MODES
from openvla_ros.msgio.topics import (
    CAMERA_IMAGE,
    compressed_topic,
    IMAGE,
    IMAGE_COMPRESSED,
    JOINT_STATES,
    NODE_JOINT_STATES,
    robot_joint_states,
)

__all__ = [
    'INTERFACES',
    'LAUNCH_ARGUMENTS',
    'POLICIES',
    'USE_SIM_TIME',
    'GraphArgs',
    'NodeSpec',
    'build_graph',
]

POLICIES = ('openvla', 'scripted', 'remote')
# The ROS parameter that puts a node on the simulator's /clock (sim:=true only).
USE_SIM_TIME = 'use_sim_time'
LATENCY_COMPENSATION = 'limiter.latency_compensation'  # the action limiter's parameter


@dataclass(frozen=True)
class LaunchArgument:
    """One launch argument: name, default (as text, like launch) and description."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()


# The launch arguments, in one place: the launch files declare exactly these.
LAUNCH_ARGUMENTS = (
    LaunchArgument(
        'model', '', 'OpenVLA checkpoint directory or hub id ("" = the profile default).'
    ),
    LaunchArgument(
        'quantize', '', 'Weight quantization ("" = profile default).', ('', *QUANTIZE_MODES)
    ),
    LaunchArgument(
        'unnorm_key', '', 'Dataset statistics key for un-normalizing actions ("" = profile).'
    ),
    LaunchArgument('device', '', 'Torch device of the policy ("" = profile default, e.g. cuda).'),
    LaunchArgument(
        'camera_topic', CAMERA_IMAGE, 'Third-person camera (sensor_msgs/Image).'
    ),
    LaunchArgument(
        'robot_name', '', 'Namespace of the arm driver topics ("" = the robot model name).'
    ),
    LaunchArgument(
        'interface',
        '',
        'Controller interface of the arm adapter ("" = the robot default).',
        ('',) + INTERFACES,
    ),
    LaunchArgument(
        'sim',
        'false',
        'Run the MuJoCo simulator instead of the hardware drivers.',
        ('true', 'false'),
    ),
    LaunchArgument('use_rviz', 'false', 'Start rviz2 with rviz/openvla.rviz.', ('true', 'false')),
    LaunchArgument('policy', 'openvla', 'Where actions come from.', POLICIES),
    LaunchArgument('server_url', 'http://127.0.0.1:8000', 'Policy server for policy:=remote.'),
    LaunchArgument('task', '', "Simulator task (sim:=true; also the scripted expert's task)."),
)


def _bool(text: str | bool) -> bool:
    """Launch-style boolean: true/false in any case, 1/0."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ('true', '1', 'yes', 'on'):
        return True
    if value in ('false', '0', 'no', 'off', ''):
        return False
    raise ValueError(f'expected true or false, got {text!r}')


@dataclass(frozen=True)
class GraphArgs:
    """The launch arguments as typed values ("" = take the profile's value)."""

    profile: str = 'widowx_bridge'
    model: str = ''
    quantize: str = ''
    unnorm_key: str = ''
    device: str = ''
    camera_topic: str = CAMERA_IMAGE
    robot_name: str = ''
    interface: str = ''
    sim: bool = False
    use_rviz: bool = False
    policy: str = 'openvla'
    server_url: str = 'http://127.0.0.1:8000'
    task: str = ''

    def __post_init__(self) -> None:
        object.__setattr__(self, 'sim', _bool(self.sim))
        object.__setattr__(self, 'use_rviz', _bool(self.use_rviz))
        if self.policy not in POLICIES:
            raise ValueError(f'policy {self.policy!r} is not one of {list(POLICIES)}')
        if self.interface and self.interface not in INTERFACES:
            raise ValueError(f'interface {self.interface!r} is not one of {list(INTERFACES)}')

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> GraphArgs:
        """From launch configurations (all text); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown launch arguments {unknown}; known: {sorted(known)}')
        return cls(**values)


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: what to run, its parameter overrides and remappings."""

    name: str
    executable: str
    module: str
    class_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    # publishes camera frames: as a process it needs
    # openvla_ros.bringup.dds_transport.large_frame_env
    large_messages: bool = False


def build_graph(args: GraphArgs, profile: Profile | None = None) -> list[NodeSpec]:
    """The nodes for args.profile with args applied on top of the profile's YAML.

    Raises:
        ValueError: an interface the robot cannot use, or a policy/sim combination that cannot
        work.
    """
    profile = profile or load_profile(args.profile)
    robot = str(profile.get('robot'))
    robot_name = args.robot_name or robot
    interface = args.interface or DEFAULT_INTERFACE[robot]
    if interface not in interfaces_for(robot):
        raise ValueError(
            f'interface {interface!r} does not fit robot {robot!r}; '
            f'use one of {list(interfaces_for(robot))}'
        )
    if args.sim and interface not in SIM_INTERFACES:
        raise ValueError(
            f'the simulator does not serve interface {interface!r}; '
            f'use one of {list(SIM_INTERFACES)}'
        )
    if args.policy == 'scripted' and not args.sim:
        raise ValueError('policy:=scripted reads true object poses and needs sim:=true')
    # Interbotix and the simulator namespace joint_states; franka_ros2 publishes the merged
    # /joint_states.
    joint_states = (
        robot_joint_states(robot_name) if robot == 'wx250s' or args.sim else JOINT_STATES
    )
    specs: list[NodeSpec] = []

    if args.sim:
        specs.append(
            NodeSpec(
                'sim',
                'sim_node',
                'openvla_ros.nodes.sim_node',
                'SimNode',
                parameters=_drop_empty(
                    {
                        'robot_name': robot_name,
                        'interface': interface,
                        'task': args.task,
                        'camera_topic': args.camera_topic,
                    }
                ),
                large_messages=True,
            )
        )

    if args.policy == 'scripted':
        specs.append(
            NodeSpec(
                'scripted_policy',
                'scripted_policy',
                'openvla_ros.nodes.scripted_policy_node',
                'ScriptedPolicyNode',
                parameters=_drop_empty({'task': args.task}),
                remappings=((NODE_JOINT_STATES, joint_states),),
            )
        )
    else:
        policy_params: dict[str, Any] = _drop_empty(
            {
                'model': args.model,
                'quantize': args.quantize,
                'unnorm_key': args.unnorm_key,
                'device': args.device,
            }
        )
        if args.policy == 'remote':
            policy_params.update(backend='remote', server_url=args.server_url)
        specs.append(
            NodeSpec(
                'policy_node',
                'policy_node',
                'openvla_ros.nodes.policy_node',
                'PolicyNode',
                parameters=policy_params,
                remappings=(
                    (IMAGE, args.camera_topic),
                    (IMAGE_COMPRESSED, compressed_topic(args.camera_topic)),
                ),
            )
        )

    specs.append(
        NodeSpec(
            'action_limiter',
            'action_limiter',
            'openvla_ros.nodes.action_limiter_node',
            'ActionLimiterNode',
            parameters=_scripted_latency(profile) if args.policy == 'scripted' else {},
            remappings=((NODE_JOINT_STATES, joint_states),),
        )
    )
    specs.append(
        NodeSpec(
            'safety_monitor',
            'safety_monitor',
            'openvla_ros.nodes.safety_monitor_node',
            'SafetyMonitorNode',
            remappings=(
                (NODE_JOINT_STATES, joint_states),
                (IMAGE, args.camera_topic),
                (IMAGE_COMPRESSED, compressed_topic(args.camera_topic)),
            ),
        )
    )
    specs.append(
        NodeSpec(
            'arm_adapter',
            'arm_adapter',
            'openvla_ros.nodes.arm_adapter_node',
            'ArmAdapterNode',
            parameters={'interface': interface, 'robot_name': robot_name},
            remappings=((NODE_JOINT_STATES, joint_states),),
        )
    )
    if args.sim:
        # The simulator owns the clock (/clock); every other node runs on it, so that timers,
        # watchdogs, stamps and chunk ages mean on a loaded machine what they mean on the robot.
        specs = [
            spec
            if spec.name == 'sim'
            else replace(spec, parameters={**spec.parameters, USE_SIM_TIME: True})
            for spec in specs
        ]
    return specs


def _scripted_latency(profile: Profile) -> dict[str, float]:
    """One control period of latency for the scripted expert's chunks.

    The expert answers at the instant of its tick, so with no latency its first action is due at
    that same control tick, and whether the limiter's tick or the chunk is handled first is a race
    between two callbacks of one instant: the tick executed either the new chunk's first action
    or the previous chunk's open-loop one, run to run. Due one period later, the chunk has a whole
    lockstep round trip (target, monitor, adapter, simulator, next /clock) to arrive first.
    """
    params = profile.node_params('action_limiter')
    period = 1.0 / float(params['control_rate'])
    return {LATENCY_COMPENSATION: float(params.get(LATENCY_COMPENSATION, 0.0)) + period}


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    """Leaves out "" so that the profile's value stands."""
    return {k: v for k, v in values.items() if v != ''}
