"""rosbag2 (MCAP) recording without a ROS install, through ``rosbags`` (pure, no rclpy).

The nodes hand over messages already serialized (CDR, as rclpy receives them with ``raw=True``), so
a recording is byte-for-byte what went over DDS and any ROS 2 tool (``ros2 bag play``, Foxglove)
reads it. Our own message types are registered from ``msg/*.msg`` so that the bag carries their
definitions.
"""

from __future__ import annotations

from pathlib import Path

from openvla_ros.msgio import topics

__all__ = ['EPISODE_TOPICS', 'BagRecorder', 'openvla_typestore']

# The topics of an episode recording and their types: camera, instruction, commanded and measured
# end-effector state (the gripper rides on the targets and the finger joints), plus what the policy
# did.
EPISODE_TOPICS = {
    topics.CAMERA_IMAGE: 'sensor_msgs/msg/Image',
    topics.INSTRUCTION: 'std_msgs/msg/String',
    topics.ACTION_CHUNK: 'openvla_ros/msg/ActionChunk',
    topics.EXPERT_ACTION: 'openvla_ros/msg/ActionChunk',  # the scripted expert's labels
    topics.EE_TARGET: 'openvla_ros/msg/EndEffectorTarget',
    topics.SAFE_EE_TARGET: 'openvla_ros/msg/EndEffectorTarget',
    topics.SAFETY_STATUS: 'openvla_ros/msg/SafetyStatus',
}


def openvla_typestore():
    """The typestore bags are written with: ``openvla_ros.msgio.fields.make_typestore`` (one
    definition for writing and reading)."""
    from openvla_ros.msgio.fields import make_typestore  # noqa: PLC0415

    return make_typestore()


class BagRecorder:
    """Writes serialized messages into one rosbag2 MCAP bag.

    Args:
        path: the bag directory to create (must not exist).
        topics: topic -> message type name (``sensor_msgs/msg/Image``).

    Raises:
        FileExistsError: the bag directory exists already (nothing is overwritten).
    """

    def __init__(self, path: str | Path, topics: dict[str, str]) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: PLC0415

        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'bag {self.path} exists already; choose a new directory')
        self.path.parent.mkdir(parents=True, exist_ok=True)
        store = openvla_typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections = {
            t: self._writer.add_connection(t, m, typestore=store) for t, m in topics.items()
        }
        self.counts = dict.fromkeys(topics, 0)

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Appends one CDR-serialized message received at timestamp_ns."""
        self._writer.write(self._connections[topic], int(timestamp_ns), data)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finishes the bag (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
