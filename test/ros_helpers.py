"""Helpers for tests running real rclpy nodes: a probe node, waiting with a timeout, and node
executables as separate processes (as `ros2 launch` starts them) stopped with SIGINT."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
import os
from pathlib import Path
import signal
import subprocess
import threading
import time
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from openvla_ros.nodes._common import wait_until

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
    if not wait_until(predicate, timeout, period):
        raise AssertionError(f'timed out after {timeout} s waiting for {what}')


def start_node(
    executable: str | Path,
    name: str,
    params_file: str | Path,
    *remaps: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.Popen:
    """A node executable as `ros2 launch` starts it: renamed to `name`, the profile YAML as its
    parameter file, each of `remaps` ('from:=to'); stdout and stderr together, as text."""
    cmd = [str(executable), '--ros-args', '-r', f'__node:={name}']
    cmd += ['--params-file', str(params_file)]
    for remap in remaps:
        cmd += ['-r', remap]
    return subprocess.Popen(
        cmd,
        env=dict(os.environ) if env is None else env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def assert_running(*processes: subprocess.Popen) -> None:
    """Fails with a process's output (its last 3000 characters) if it has exited."""
    for p in processes:
        assert p.poll() is None, p.stdout.read()[-3000:]


def wait_for_nodes(
    probe: Node,
    names: Iterable[str],
    timeout: float,
    processes: Iterable[subprocess.Popen] = (),
    period: float = 0.02,
) -> None:
    """Waits until every name is on the probe's graph; fails at once with its output if one of
    `processes` exits first, and after timeout [s] otherwise."""
    names, processes = set(names), list(processes)

    def up() -> bool:
        assert_running(*processes)
        return names <= set(probe.get_node_names())

    wait_for(up, timeout, f'{", ".join(sorted(names))} on the graph', period)


@contextmanager
def sigint_on_exit(*processes: subprocess.Popen, timeout: float) -> Iterator[list[str]]:
    """Runs the body, then sends SIGINT (as Ctrl-C) to each process and collects its output
    (waiting up to timeout [s] each) into the yielded list, in order, for the exit-code checks."""
    outputs: list[str] = []
    try:
        yield outputs
    finally:
        for p in processes:
            p.send_signal(signal.SIGINT)
        outputs.extend(p.communicate(timeout=timeout)[0] for p in processes)


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
