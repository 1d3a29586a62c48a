"""The rclpy side of openvla_ros.bringup.launch_checks, shared by the launch_testing tests (ROS
machines) and the unit tests that run here: subscriptions with each check's QoS and the
instruction sender
(waiting with a timeout: openvla_ros.nodes._common.wait_until). (rclpy stays out of the package
core, so this lives with the tests.)
"""

from __future__ import annotations

from collections.abc import Iterable
import importlib

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from openvla_ros.bringup.launch_checks import (
    INSTRUCTION_TOPIC,
    LiftCheck,
    object_heights,
    OBJECT_POSES_TOPIC,
    ObjectRise,
    RELIABLE,
    TopicCheck,
    TopicQos,
    TopicWatch,
)

_RELIABILITY = {
    'reliable': ReliabilityPolicy.RELIABLE,
    'best_effort': ReliabilityPolicy.BEST_EFFORT,
}
_DURABILITY = {
    'volatile': DurabilityPolicy.VOLATILE,
    'transient_local': DurabilityPolicy.TRANSIENT_LOCAL,
}


def to_qos(qos: TopicQos) -> QoSProfile:
    return QoSProfile(
        depth=qos.depth,
        reliability=_RELIABILITY[qos.reliability],
        durability=_DURABILITY[qos.durability],
    )


def message_class(type_name: str) -> type:
    """'sensor_msgs/msg/Image' -> sensor_msgs.msg.Image."""
    package, kind, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def watch_topics(node: Node, checks: Iterable[TopicCheck]) -> TopicWatch:
    """Subscribes ``node`` to every check's topic with that check's QoS."""
    watch = TopicWatch(checks)
    for check in watch.checks:
        node.create_subscription(
            message_class(check.msg_type),
            check.topic,
            lambda _msg, topic=check.topic: watch.record(topic),
            to_qos(check.qos),
        )
    return watch


def watch_lift(node: Node, check: LiftCheck) -> ObjectRise:
    """Follows the check's object on the simulator's object poses."""
    rise = ObjectRise(check)
    node.create_subscription(
        MarkerArray,
        OBJECT_POSES_TOPIC,
        lambda msg: rise.on_heights(object_heights(msg)),
        to_qos(RELIABLE),
    )
    return rise


class InstructionSender:
    """Publishes the instruction until stopped (the nodes ignore a repeat of the same text, and a
    repeat covers a subscriber that was discovered late)."""

    def __init__(self, node: Node, text: str) -> None:
        self._node = node
        self._pub = node.create_publisher(String, INSTRUCTION_TOPIC, to_qos(RELIABLE))
        self._text = text
        self._timer = None

    def start(self, rise: ObjectRise | None = None, period: float = 0.5) -> None:
        if rise is not None:
            rise.instruction_sent()
        self._publish()
        self._timer = self._node.create_timer(period, self._publish)

    def _publish(self) -> None:
        self._pub.publish(String(data=self._text))

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
