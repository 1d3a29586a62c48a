"""CPU of each ROS node of the launched graph, as separate processes (issue 19, item 9).

Starts the profile's node graph (``openvla_ros.bringup.graph.build_graph`` with ``sim:=true
policy:=scripted``) the way ``ros2 launch`` does: one process per node, the profile YAML as the
parameter file, the graph's parameter overrides and remappings on the command line. It does not
need the ROS 2 launch packages. Once the limiter publishes targets it sends the task's
instruction, waits ``warmup`` seconds, then reads each process's ``utime + stime`` from
``/proc/<pid>/stat`` at the start and the end of a ``window`` of wall-clock seconds. CPU [%] is
the CPU time over the window (100 % = one core). A probe node counts the pipeline's messages in
the same window (a node that starves shows up there).

Also times the safety monitor's camera watchdog input: deserializing a 640x480 rgb8 Image versus
reading its header stamp from the raw CDR bytes (``header_stamp_from_cdr``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
import timeit
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from openvla_ros.bringup.dds_transport import large_frame_env
from openvla_ros.bringup.graph import build_graph, GraphArgs, NodeSpec
from openvla_ros.bringup.profiles import config_dir
from openvla_ros.harness.runner import private_domain_id
from openvla_ros.msg import ActionChunk, EndEffectorTarget, SafetyStatus
from openvla_ros.msgio.topics import (
    ACTION_CHUNK,
    EE_TARGET,
    INSTRUCTION,
    NODE_JOINT_STATES,
    SAFE_EE_TARGET,
    SAFETY_STATUS,
)
from openvla_ros.nodes._common import spun_node, wait_until
from openvla_ros.nodes._conversions import header_stamp_from_cdr
from openvla_ros.sim.tasks import get_task

__all__ = ['camera_watchdog_cost', 'measure_graph_cpu', 'node_command']

_TICKS = os.sysconf('SC_CLK_TCK')


def node_command(spec: NodeSpec, profile: str) -> list[str]:
    """The command line ``ros2 launch`` builds for one node (venv console script)."""
    exe = Path(sys.prefix) / 'bin' / spec.executable
    cmd = [
        str(exe),
        '--ros-args',
        '-r',
        f'__node:={spec.name}',
        '--params-file',
        str(config_dir() / f'{profile}.yaml'),
    ]
    for key, value in spec.parameters.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ['-p', f'{key}:={text}']
    for src, dst in spec.remappings:
        cmd += ['-r', f'{src}:={dst}']
    return cmd


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process [s] (fields 14 and 15 of /proc/<pid>/stat)."""
    text = Path(f'/proc/{pid}/stat').read_text()
    fields = text[text.rindex(')') + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class GraphCpu:
    """Result of one run: CPU per node [%], message counts in the window, exit codes."""

    profile: str
    window: float
    cpu_percent: dict[str, float]
    messages: dict[str, int]
    exit_codes: dict[str, int | None]
    load_before: tuple[float, float, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            'profile': self.profile,
            'window_s': self.window,
            'cpu_percent': self.cpu_percent,
            'messages_in_window': self.messages,
            'exit_codes': self.exit_codes,
            'loadavg_before': list(self.load_before),
        }


class _Probe(Node):
    """Counts the pipeline's messages and sends the instruction."""

    def __init__(self, camera_topic: str, joint_states: str, **kwargs: Any) -> None:
        super().__init__('cpu_bench_probe', **kwargs)
        self.counts: Counter[str] = Counter()
        self.counting = False
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        topics = [
            (EndEffectorTarget, EE_TARGET, reliable, False),
            (EndEffectorTarget, SAFE_EE_TARGET, reliable, False),
            (SafetyStatus, SAFETY_STATUS, reliable, False),
            (ActionChunk, ACTION_CHUNK, reliable, True),
            (JointState, joint_states, 10, True),
            (Image, camera_topic, qos_profile_sensor_data, True),
        ]
        for msg_type, topic, qos, raw in topics:
            self.create_subscription(
                msg_type, topic, lambda _m, t=topic: self._count(t), qos, raw=raw
            )
        self.instruction_pub = self.create_publisher(String, INSTRUCTION, reliable)

    def _count(self, topic: str) -> None:
        self.counts['seen:' + topic] += 1
        if self.counting:
            self.counts[topic] += 1


def measure_graph_cpu(
    profile: str,
    *,
    task: str = 'lift_block',
    window: float = 30.0,
    warmup: float = 5.0,
    start_timeout: float = 120.0,
) -> GraphCpu:
    """Runs the profile's graph as separate processes and measures CPU per node.

    Raises:
        RuntimeError: a process died or the limiter published nothing within start_timeout.
    """
    args = GraphArgs(profile=profile, sim=True, policy='scripted', task=task)
    specs = build_graph(args)
    env = dict(os.environ)
    env.setdefault('ROS_DOMAIN_ID', str(private_domain_id()))
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('MUJOCO_GL', 'egl')
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    joint_states = dict(specs[-1].remappings).get(NODE_JOINT_STATES, NODE_JOINT_STATES)
    load_before = os.getloadavg()
    procs = {
        s.name: subprocess.Popen(
            node_command(s, profile),
            env={**env, **(large_frame_env(env) if s.large_messages else {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        for s in specs
    }
    with spun_node(partial(_Probe, args.camera_topic, joint_states)) as probe:
        try:

            def started() -> bool:
                dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
                if dead:
                    raise RuntimeError(f'node processes exited during start-up: {dead}')
                return probe.counts['seen:/openvla/ee_target'] > 0

            if not wait_until(started, start_timeout, period=0.1):
                raise RuntimeError(f'no /openvla/ee_target within {start_timeout:.0f} s')
            instruction = get_task(task, str(_robot(profile))).instruction
            end_warmup = time.monotonic() + warmup
            while time.monotonic() < end_warmup:
                probe.instruction_pub.publish(String(data=instruction))
                time.sleep(0.5)
            start = {n: _cpu_seconds(p.pid) for n, p in procs.items()}
            probe.counting = True
            t0 = time.monotonic()
            time.sleep(window)
            probe.counting = False
            elapsed = time.monotonic() - t0
            end = {n: _cpu_seconds(p.pid) for n, p in procs.items()}
            cpu = {n: round(100.0 * (end[n] - start[n]) / elapsed, 1) for n in procs}
            messages = {k: v for k, v in probe.counts.items() if not k.startswith('seen:')}
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            codes: dict[str, int | None] = {}
            for n, p in procs.items():
                try:
                    codes[n] = p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    codes[n] = p.wait(timeout=5)
    return GraphCpu(profile, round(elapsed, 2), cpu, messages, codes, load_before)


def _robot(profile: str) -> str:
    from openvla_ros.bringup.profiles import load_profile  # noqa: PLC0415

    return str(load_profile(profile).get('robot'))


def camera_watchdog_cost(width: int = 640, height: int = 480, number: int = 200) -> dict:
    """[µs] per call: deserialize a ``width`` x ``height`` rgb8 Image vs read its CDR stamp
    (best of 5 repeats of ``number`` calls)."""
    msg = Image(height=height, width=width, encoding='rgb8', step=3 * width)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_796_000_000, 123_456_789
    msg.data = np.random.default_rng(0).integers(0, 255, 3 * width * height, np.uint8).tobytes()
    data = serialize_message(msg)
    assert header_stamp_from_cdr(data) == 1_796_000_000 + 123_456_789e-9
    full = min(timeit.repeat(lambda: deserialize_message(data, Image), number=number, repeat=5))
    stamp = min(timeit.repeat(lambda: header_stamp_from_cdr(data), number=number * 100, repeat=5))
    return {
        'bytes': len(data),
        'deserialize_message_us': round(full / number * 1e6, 1),
        'header_stamp_from_cdr_us': round(stamp / (number * 100) * 1e6, 2),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('profiles', nargs='*', default=['widowx_bridge'])
    parser.add_argument('--task', default='lift_block')
    parser.add_argument('--window', type=float, default=30.0, help='[s] measured window')
    parser.add_argument('--warmup', type=float, default=5.0, help='[s] after the instruction')
    parser.add_argument('--json', action='store_true')
    parser.add_argument('--no-graph', action='store_true', help='only the camera watchdog cost')
    a = parser.parse_args(argv)
    out: dict[str, Any] = {'camera_watchdog': camera_watchdog_cost(), 'graphs': []}
    if not a.no_graph:
        for profile in a.profiles:
            result = measure_graph_cpu(profile, task=a.task, window=a.window, warmup=a.warmup)
            out['graphs'].append(result.as_dict())
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    cam = out['camera_watchdog']
    print(
        f'camera watchdog ({cam["bytes"]} B Image): deserialize_message '
        f'{cam["deserialize_message_us"]} us, header_stamp_from_cdr '
        f'{cam["header_stamp_from_cdr_us"]} us'
    )
    for g in out['graphs']:
        print(f'\n{g["profile"]}: {g["window_s"]} s window, load before {g["loadavg_before"]}')
        for name, cpu in g['cpu_percent'].items():
            print(f'  {name:16s} {cpu:6.1f} %  exit {g["exit_codes"][name]}')
        print('  messages:', g['messages_in_window'])
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
