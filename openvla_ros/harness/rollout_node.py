"""episode: drives and records one run of the stack (``openvla-ros demo`` and ``evaluate``).

Publishes the instruction, keeps what a report needs in memory (camera frames for the video,
commanded and reached end-effector positions, policy latencies, the safety monitor's counters) and,
when asked, records the episode's topics byte for byte into a rosbag2 MCAP bag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import threading

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from openvla_ros.control import get_kinematics
from openvla_ros.msg import ActionChunk, EndEffectorTarget, SafetyStatus
from openvla_ros.msgio.bags import BagRecorder, EPISODE_TOPICS
from openvla_ros.msgio.images import raw_to_rgb
from openvla_ros.msgio.topics import (
    ACTION_CHUNK,
    CAMERA_IMAGE,
    INSTRUCTION,
    SAFE_EE_TARGET,
    SAFETY_STATUS,
)
from openvla_ros.nodes._common import stamp_to_sec
from openvla_ros.nodes._conversions import InvalidPoseError, joint_positions, pose_to_matrix

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class RolloutData:
    """What one run produced (times: ``RolloutNode.time_of``, the messages' own stamps)."""

    frames: list[np.ndarray] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    commanded: list[tuple[float, np.ndarray]] = field(default_factory=list)
    reached: list[tuple[float, np.ndarray]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    chunks: int = 0
    status: SafetyStatus | None = None
    states: list[int] = field(default_factory=list)


class RolloutNode(Node):
    """Sends the instruction and collects (and optionally records) the episode.

    Args:
        robot: kinematics model, to turn joint states into reached poses.
        joint_states: the measured joint-state topic.
        camera_topic: the camera the policy sees.
        frame_stride: keep every n-th camera frame for the video.
        bag: directory of an MCAP bag to record, or None.
    """

    def __init__(
        self,
        node_name: str = 'episode',
        *,
        robot: str,
        joint_states: str,
        camera_topic: str = CAMERA_IMAGE,
        frame_stride: int = 1,
        bag: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(node_name, **kwargs)
        self.kinematics = get_kinematics(robot)
        self.data = RolloutData()
        self._lock = threading.Lock()
        self._t0 = self.get_clock().now().nanoseconds  # the wall clock's start (without sim time)
        self._frame_stride = max(1, int(frame_stride))
        self._frame_count = 0
        self._instruction_pub = self.create_publisher(String, INSTRUCTION, RELIABLE)
        topics = dict(EPISODE_TOPICS)
        topics[camera_topic] = topics.pop(CAMERA_IMAGE)
        topics[joint_states] = 'sensor_msgs/msg/JointState'
        self._recorder = BagRecorder(bag, topics) if bag else None
        types = {
            'sensor_msgs/msg/Image': Image,
            'std_msgs/msg/String': String,
            'sensor_msgs/msg/JointState': JointState,
            'openvla_ros/msg/ActionChunk': ActionChunk,
            'openvla_ros/msg/EndEffectorTarget': EndEffectorTarget,
            'openvla_ros/msg/SafetyStatus': SafetyStatus,
        }
        handlers = {
            camera_topic: self._on_image,
            joint_states: self._on_joint_states,
            SAFE_EE_TARGET: self._on_safe_target,
            ACTION_CHUNK: self._on_chunk,
            SAFETY_STATUS: self._on_status,
        }
        for topic, type_name in topics.items():
            qos = qos_profile_sensor_data if topic == camera_topic else RELIABLE
            msg_type = types[type_name]
            handler = handlers.get(topic)
            self.create_subscription(
                msg_type,
                topic,
                lambda data, t=topic, m=msg_type, h=handler: self.on_raw(t, m, h, data),
                qos,
                raw=True,
            )

    def now(self) -> float:
        """[s] Simulated seconds since the simulator started (use_sim_time, as in ``openvla-ros
        demo`` and ``evaluate``), else wall-clock seconds since this node started."""
        clock = self.get_clock()
        if clock.ros_time_is_active:
            return clock.now().nanoseconds * 1e-9
        return (clock.now().nanoseconds - self._t0) * 1e-9

    def time_of(self, header) -> float:
        """[s] When a message's data holds: its stamp in simulated time (a message handled a tick
        late on a loaded machine keeps its tick), else the receipt time ``now()``."""
        if self.get_clock().ros_time_is_active:
            return stamp_to_sec(header.stamp)
        return self.now()

    def instruct(self, text: str) -> None:
        self._instruction_pub.publish(String(data=text))

    def on_raw(self, topic: str, msg_type, handler, data: bytes) -> None:
        if self._recorder is not None:
            with self._lock:
                if self._recorder is not None:
                    self._recorder.write(topic, self.get_clock().now().nanoseconds, data)
        if handler is not None:
            handler(deserialize_message(data, msg_type))

    def _on_image(self, msg: Image) -> None:
        self._frame_count += 1
        if (self._frame_count - 1) % self._frame_stride:
            return
        rgb = raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        with self._lock:
            self.data.frames.append(rgb)
            self.data.frame_times.append(self.time_of(msg.header))

    def _on_joint_states(self, msg: JointState) -> None:
        q = joint_positions(msg, self.kinematics.joint_names)
        if q is not None:
            with self._lock:
                self.data.reached.append((self.time_of(msg.header), self.kinematics.fk(q)[:3, 3]))

    def _on_safe_target(self, msg: EndEffectorTarget) -> None:
        try:
            position = pose_to_matrix(msg.pose)[:3, 3]
        except InvalidPoseError:
            return  # not a command the arm got (the adapter refuses it)
        with self._lock:
            self.data.commanded.append((self.time_of(msg.header), position))

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self._lock:
            self.data.chunks += 1
            if np.isfinite(msg.inference_latency) and msg.model != 'scripted_expert':
                self.data.latencies.append(float(msg.inference_latency))

    def _on_status(self, msg: SafetyStatus) -> None:
        with self._lock:
            self.data.status = msg
            self.data.states.append(int(msg.state))

    def close(self) -> None:
        """Finishes the bag, if one is being recorded (idempotent)."""
        with self._lock:
            if self._recorder is not None:
                self._recorder.close()
                self._recorder = None
