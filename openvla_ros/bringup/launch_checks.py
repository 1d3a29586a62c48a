"""What a launch test checks after ``ros2 launch openvla_ros <profile>.launch.py sim:=true
policy:=scripted task:=lift_block``, as plain data and predicates (no rclpy, no launch).

The launch_testing tests (``test/launch/test_launch_*.py``, ROS machines only) and the unit tests
that run here against the in-process runner share this module, so the launch tests are thin
wrappers over tested code:

- ``topics_to_wait_for``: each topic with the QoS its consumers in the graph use. The camera is
  best effort (sensor data): a reliable subscription, as ``launch_testing_ros.WaitForTopics``
  makes, never matches it.
- ``TopicWatch``: which of those topics have carried a message, and a readable report of the rest.
- ``ObjectRise``: the success check of a lift task: the object rises after the instruction.
- ``EXIT_CODES_AFTER_SIGINT``: what every process must return when the launch is stopped (Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import threading
from typing import Any

from openvla_ros.bringup.graph import build_graph, GraphArgs
from openvla_ros.bringup.profiles import load_profile
from openvla_ros.msgio.topics import (
    ACTION_CHUNK,
    EE_TARGET,
    INSTRUCTION,
    NODE_JOINT_STATES,
    OBJECT_POSES,
    SAFE_EE_TARGET,
    SAFETY_STATUS,
)
from openvla_ros.sim.tasks import get_task

__all__ = [
    'EXIT_CODES_AFTER_SIGINT',
    'INSTRUCTION_TOPIC',
    'OBJECT_POSES_TOPIC',
    'RELIABLE',
    'SENSOR_DATA',
    'LiftCheck',
    'ObjectRise',
    'TopicCheck',
    'TopicQos',
    'TopicWatch',
    'lift_check_for',
    'object_heights',
    'topics_to_wait_for',
]

INSTRUCTION_TOPIC = INSTRUCTION
OBJECT_POSES_TOPIC = OBJECT_POSES
# Every node's main() (openvla_ros.nodes._common.run_node) returns 0 after SIGINT, and so do
# robot_state_publisher and rviz2 (rclcpp shuts down on SIGINT). A negative code is a process
# killed by a signal: launch escalates to SIGTERM when one does not exit within its timeout.
EXIT_CODES_AFTER_SIGINT = (0,)


@dataclass(frozen=True)
class TopicQos:
    """A subscription's QoS as plain data (the ROS shell turns it into an rclpy QoSProfile).

    Attributes:
        reliability: 'reliable' or 'best_effort'. A reliable subscription does not match a
            best-effort publisher; a best-effort one matches both.
        durability: 'volatile' or 'transient_local'.
        depth: history depth (keep last).
    """

    reliability: str
    durability: str = 'volatile'
    depth: int = 10

    def __post_init__(self) -> None:
        if self.reliability not in ('reliable', 'best_effort'):
            raise ValueError(f'reliability {self.reliability!r}: use reliable or best_effort')
        if self.durability not in ('volatile', 'transient_local'):
            raise ValueError(f'durability {self.durability!r}: use volatile or transient_local')

    def receives_from(self, publisher_reliability: str) -> bool:
        """Whether this subscription matches a publisher offering that reliability."""
        return self.reliability == 'best_effort' or publisher_reliability == 'reliable'


RELIABLE = TopicQos('reliable')
# rclpy.qos.qos_profile_sensor_data: what the simulator and camera drivers publish images with.
SENSOR_DATA = TopicQos('best_effort', 'volatile', 5)


@dataclass(frozen=True)
class TopicCheck:
    """One topic a launch test waits for.

    Attributes:
        topic: the resolved topic name.
        msg_type: 'package/msg/Name'.
        qos: the QoS to subscribe with: the one the graph's consumers use.
        after_instruction: True where only an instruction makes it flow (the policy's chunks and
            the targets that follow from them).
    """

    topic: str
    msg_type: str
    qos: TopicQos
    after_instruction: bool = False

    def describe(self) -> str:
        return f'{self.topic} ({self.msg_type}, {self.qos.reliability})'


def _remapped(args: GraphArgs, node: str, name: str) -> str:
    for spec in build_graph(args):
        if spec.name == node:
            return dict(spec.remappings).get(name, name)
    raise ValueError(f'the graph of {args.profile} has no node {node!r}')


def topics_to_wait_for(args: GraphArgs) -> tuple[TopicCheck, ...]:
    """The topics that show the graph of ``args`` running, with the QoS to wait for each.

    Raises:
        ValueError: args that do not run the simulator (only a simulated graph is self-contained).
    """
    if not args.sim:
        raise ValueError(
            'launch checks need sim:=true: without it the camera and joint states '
            'come from drivers outside the launch'
        )
    joint_states = _remapped(args, 'action_limiter', NODE_JOINT_STATES)
    return (
        TopicCheck(args.camera_topic, 'sensor_msgs/msg/Image', SENSOR_DATA),
        TopicCheck(joint_states, 'sensor_msgs/msg/JointState', RELIABLE),
        TopicCheck(OBJECT_POSES_TOPIC, 'visualization_msgs/msg/MarkerArray', RELIABLE),
        TopicCheck(SAFETY_STATUS, 'openvla_ros/msg/SafetyStatus', RELIABLE),
        TopicCheck(ACTION_CHUNK, 'openvla_ros/msg/ActionChunk', RELIABLE, True),
        TopicCheck(EE_TARGET, 'openvla_ros/msg/EndEffectorTarget', RELIABLE, True),
        TopicCheck(SAFE_EE_TARGET, 'openvla_ros/msg/EndEffectorTarget', RELIABLE, True),
    )


class TopicWatch:
    """Messages seen per checked topic; the ROS shell calls ``record`` (from any thread)."""

    def __init__(self, checks: Iterable[TopicCheck]) -> None:
        self.checks = tuple(checks)
        self._counts = {c.topic: 0 for c in self.checks}
        self._lock = threading.Lock()

    def record(self, topic: str) -> None:
        with self._lock:
            self._counts[topic] += 1

    def count(self, topic: str) -> int:
        with self._lock:
            return self._counts[topic]

    def missing(self, *, after_instruction: bool = True) -> list[TopicCheck]:
        """Checks without a message yet (only those that flow before an instruction, if
        ``after_instruction`` is False)."""
        with self._lock:
            return [
                c
                for c in self.checks
                if self._counts[c.topic] == 0 and (after_instruction or not c.after_instruction)
            ]

    def report(self, *, after_instruction: bool = True) -> str:
        missing = self.missing(after_instruction=after_instruction)
        if not missing:
            return 'every topic carried messages'
        return 'no message on ' + ', '.join(c.describe() for c in missing)


@dataclass(frozen=True)
class LiftCheck:
    """A lift task's success check: ``object_name`` rises by ``min_rise`` [m] above where it
    rested when ``instruction`` was sent."""

    object_name: str
    min_rise: float
    instruction: str


def lift_check_for(args: GraphArgs) -> LiftCheck:
    """The lift check of args' task on args' robot (``task`` "" = lift_block).

    Raises:
        ValueError: the task is not a lift task, or not defined for the robot.
    """
    robot = str(load_profile(args.profile).get('robot'))
    task = get_task(args.task or 'lift_block', robot)
    if task.place is not None:
        raise ValueError(
            f'task {task.name!r} places {task.pick} on {task.place}; '
            'the rise check needs a lift task such as lift_block'
        )
    return LiftCheck(task.pick, task.lift_height, task.instruction)


def object_heights(markers: Any) -> dict[str, float]:
    """Object name -> z [m] of its centre from the simulator's ``/openvla/sim/object_poses``
    (a visualization_msgs/MarkerArray: one marker per object, ``text`` = its name)."""
    return {m.text: float(m.pose.position.z) for m in markers.markers if m.ns == 'sim_objects'}


class ObjectRise:
    """Follows one object's height; ``rose()`` once it is ``min_rise`` above its height when the
    instruction was sent (its resting height: nothing moves it before)."""

    def __init__(self, check: LiftCheck) -> None:
        self.check = check
        self.latest: float | None = None
        self.baseline: float | None = None
        self.peak: float | None = None
        self._lock = threading.Lock()

    def on_heights(self, heights: Mapping[str, float]) -> None:
        if self.check.object_name not in heights:
            return
        z = float(heights[self.check.object_name])
        with self._lock:
            self.latest = z
            if self.baseline is not None:
                self.peak = z if self.peak is None else max(self.peak, z)

    def instruction_sent(self) -> None:
        """Takes the baseline; the first call counts (the instruction may be repeated).

        Raises:
            RuntimeError: no pose of the object has been seen yet.
        """
        with self._lock:
            if self.baseline is not None:
                return
            if self.latest is None:
                raise RuntimeError(
                    f'no pose of {self.check.object_name} seen before the '
                    f'instruction on {OBJECT_POSES_TOPIC}'
                )
            self.baseline = self.latest

    def rise(self) -> float:
        """The highest rise above the baseline so far [m] (0 before the instruction)."""
        with self._lock:
            if self.baseline is None or self.peak is None:
                return 0.0
            return self.peak - self.baseline

    def rose(self) -> bool:
        return self.rise() >= self.check.min_rise

    def report(self) -> str:
        return (
            f'{self.check.object_name} rose {self.rise():.3f} m after '
            f'"{self.check.instruction}" (needed {self.check.min_rise:.3f} m)'
        )
