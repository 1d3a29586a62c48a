"""A target whose quaternion is zero or not finite is no pose (``openvla_ros.msgio.poses``), over
real rclpy: the safety monitor node refuses it and holds (REJECT_INVALID_POSE; no NaN reaches the
core or the arm) and lets the next good target pass; the arm adapter node refuses it too.

The monitor's topics are remapped under a private prefix: another test process on this machine
may share the DDS domain (``1 + pid % 100``) and publish on ``/openvla/*``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import math
import os
from pathlib import Path
import threading

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from ros_helpers import Probe, wait_for
from sensor_msgs.msg import JointState

from openvla_ros.adapters import REJECT_INVALID_POSE
from openvla_ros.control import get_kinematics
from openvla_ros.msg import EndEffectorTarget, SafetyStatus
from openvla_ros.nodes._common import spinning
from openvla_ros.nodes._conversions import matrix_to_pose, pose_to_matrix
from openvla_ros.nodes.safety_monitor_node import SafetyMonitorNode

PROFILE = Path(__file__).resolve().parents[2] / 'config' / 'widowx_bridge.yaml'
PREFIX = f'/invalid_pose_{os.getpid()}'
TOPICS = ('ee_target', 'safe_ee_target', 'safety_status', 'policy_status', 'action_chunk', 'estop')
Q0 = np.array([0.0, -0.3, 0.4, 0.0, 1.2, 0.0])  # wx250s, inside the profile's safe set
KIN = get_kinematics('wx250s')
BAD_QUATERNIONS = {
    'zero': (0.0, 0.0, 0.0, 0.0),
    'nan': (math.nan, 0.0, 0.0, 1.0),
    'inf': (0.0, math.inf, 0.0, 1.0),
}


def target_msg(pose: np.ndarray, quaternion=None) -> EndEffectorTarget:
    msg = EndEffectorTarget(pose=matrix_to_pose(pose), gripper=1.0)
    if quaternion is not None:
        o = msg.pose.orientation
        o.x, o.y, o.z, o.w = quaternion
    msg.header.frame_id = 'wx250s/base_link'
    return msg


class Feeder:
    """Camera, joint states (the arm at Q0) and ``self.target`` at 20 Hz, like the sim and the
    limiter."""

    def __init__(self, probe: Probe, target: EndEffectorTarget) -> None:
        self.probe, self.target = probe, target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rgb = np.zeros((8, 8, 3), np.uint8)
        while not self._stop.wait(0.05):
            self.probe.image(rgb, topic=f'{PREFIX}/image')
            js = JointState(name=list(KIN.joint_names), position=[float(v) for v in Q0])
            js.header.stamp = self.probe.get_clock().now().to_msg()
            self.probe.publish(JointState, f'{PREFIX}/joint_states', js)
            self.target.header.stamp = self.probe.get_clock().now().to_msg()
            self.probe.publish(EndEffectorTarget, f'{PREFIX}/ee_target', self.target)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


@contextmanager
def monitor_graph() -> Iterator[tuple[SafetyMonitorNode, Probe]]:
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    remaps = [f'/openvla/{t}:={PREFIX}/{t}' for t in TOPICS]
    remaps += [
        f'/instruction:={PREFIX}/instruction',
        f'joint_states:={PREFIX}/joint_states',
        f'image:={PREFIX}/image',
    ]
    args = ['--ros-args', '--params-file', str(PROFILE)]
    for remap in remaps:
        args += ['-r', remap]
    made: list = []
    try:
        monitor = SafetyMonitorNode(context=context, cli_args=args)
        made.append(monitor)
        probe = Probe(context=context)
        made.append(probe)
        probe.listen(SafetyStatus, f'{PREFIX}/safety_status')
        probe.listen(EndEffectorTarget, f'{PREFIX}/safe_ee_target')
        for node in made:
            executor.add_node(node)
        with spinning(executor, 0.02):
            yield monitor, probe
    finally:
        executor.shutdown()
        for node in made:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def passing(probe: Probe) -> bool:
    statuses = probe.messages(f'{PREFIX}/safety_status')
    return bool(statuses) and statuses[-1].state in (
        SafetyStatus.STATE_OK,
        SafetyStatus.STATE_LIMITED,
    )


@pytest.mark.parametrize('kind', list(BAD_QUATERNIONS))
def test_the_monitor_node_holds_on_a_target_without_a_valid_quaternion(kind):
    p0 = KIN.fk(Q0)
    with monitor_graph() as (monitor, probe), Feeder(probe, target_msg(p0)) as feeder:
        wait_for(lambda: passing(probe), 60, 'good targets at the measured pose passing')
        rejected = int(probe.messages(f'{PREFIX}/safety_status')[-1].rejected)

        feeder.target = target_msg(p0, BAD_QUATERNIONS[kind])
        probe.clear()

        def refused() -> list:
            return [
                s
                for s in probe.stamped(f'{PREFIX}/safety_status')
                if s[1].state == SafetyStatus.STATE_HOLD and 'REJECT_INVALID_POSE' in s[1].reasons
            ]

        wait_for(refused, 20, f'a REJECT_INVALID_POSE hold for the {kind} quaternion')
        since = refused()[0][0]
        wait_for(
            lambda: any(t > since for t, _ in probe.stamped(f'{PREFIX}/safe_ee_target')),
            10,
            'a safe target after the refusal',
        )
        held = [m for t, m in probe.stamped(f'{PREFIX}/safe_ee_target') if t > since]
        for msg in held:
            assert msg.hold, 'a target other than hold passed after the invalid one'
            # finite and where the arm is: pose_to_matrix would raise for a NaN quaternion
            np.testing.assert_allclose(pose_to_matrix(msg.pose), p0, atol=1e-6)
        assert int(refused()[-1][1].rejected) > rejected

        feeder.target = target_msg(p0)  # the node is alive: a good target passes again
        probe.clear()
        wait_for(lambda: passing(probe), 20, 'good targets passing again')


@pytest.mark.parametrize('kind', list(BAD_QUATERNIONS))
def test_the_arm_adapter_node_refuses_a_target_without_a_valid_quaternion(ros_context, kind):
    from openvla_ros.nodes.arm_adapter_node import ArmAdapterNode  # noqa: PLC0415

    node = ArmAdapterNode(context=ros_context)
    try:
        node.measured_q = np.zeros(6)
        node.on_target(target_msg(KIN.fk(Q0), BAD_QUATERNIONS[kind]))
        assert node.last_result.reason == REJECT_INVALID_POSE
        assert 'quaternion' in node.last_result.message
        assert node.counts['refused'] == 1 and node.counts['sent'] == 0
        assert node.last_target is None
    finally:
        node.close()
        node.destroy_node()
