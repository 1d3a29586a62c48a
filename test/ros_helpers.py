"""Helpers for tests running real rclpy nodes in-process: a probe node, waiting with a timeout."""

from __future__ import annotations

from collections.abc import Callable
import threading
import time
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def vendor(module: str):
    """A vendor message module (built as a fixture by scripts/setup_venv.sh), or skip with why."""
    import pytest  # noqa: PLC0415

    return pytest.importorskip(module, reason=f'{module.split(".")[0]} fixture not built: run '
                               'scripts/build_fixture_interfaces.sh .venv')


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, period: float = 0.02
) -> None:
    """Waits until predicate() is true; fails the test with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(period)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}')


class Probe(Node):
    """Collects messages from topics and publishes test inputs (spun by the runner's executor)."""

    def __init__(self, node_name: str = 'probe', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.received: dict[str, list] = {}
        self._lock = threading.Lock()
        self._pubs: dict[str, Any] = {}

    def listen(self, msg_type, topic: str, qos=RELIABLE) -> None:
        self.received.setdefault(topic, [])

        def on_msg(msg, topic=topic):
            with self._lock:
                self.received[topic].append((time.monotonic(), msg))

        self.create_subscription(msg_type, topic, on_msg, qos)

    def messages(self, topic: str) -> list:
        with self._lock:
            return [m for _, m in self.received.get(topic, [])]

    def stamped(self, topic: str) -> list:
        with self._lock:
            return list(self.received.get(topic, []))

    def clear(self, topic: str | None = None) -> None:
        with self._lock:
            for key in [topic] if topic else list(self.received):
                self.received[key] = []

    def publish(self, msg_type, topic: str, msg, qos=RELIABLE) -> None:
        if topic not in self._pubs:
            self._pubs[topic] = self.create_publisher(msg_type, topic, qos)
        self._pubs[topic].publish(msg)

    def image(
        self, rgb: np.ndarray, topic: str = '/camera/image_raw', encoding: str = 'rgb8', stamp=None
    ) -> None:
        msg = Image()
        msg.header.stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        msg.header.frame_id = 'camera'
        msg.height, msg.width = rgb.shape[:2]
        msg.encoding = encoding
        msg.step = rgb.shape[1] * (rgb.shape[2] if rgb.ndim == 3 else 1)
        msg.data = rgb.tobytes()
        self.publish(Image, topic, msg, qos_profile_sensor_data)
