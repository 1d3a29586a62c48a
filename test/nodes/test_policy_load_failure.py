"""A policy that cannot load, real rclpy: the policy node says so with STATE_LOAD_FAILED (not a
text to match), keeps saying so after an instruction, and the safety monitor holds for it.

Another test process on this machine may share the DDS domain (``1 + pid % 100``): the checks
read only this test's messages (the policy's model path, the monitor's frame_id)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from ros_helpers import Probe, RELIABLE, wait_for
from std_msgs.msg import String

from openvla_ros.bringup.profiles import load_profile
from openvla_ros.control import get_kinematics
from openvla_ros.harness.runner import to_parameters
from openvla_ros.msg import ActionChunk, PolicyStatus, SafetyStatus
from openvla_ros.nodes._common import spinning
from openvla_ros.nodes.policy_node import PolicyNode
from openvla_ros.nodes.safety_monitor_node import SafetyMonitorNode

BOUNDS = {
    k: v
    for k, v in load_profile('widowx_bridge').common.items()
    if 'orientation' in k or 'workspace' in k
}
Q0 = np.array([0.0, -0.3, 0.4, 0.0, 1.2, 0.0])  # wx250s, inside the profile's safe set


@contextmanager
def nodes(missing: str, *, with_monitor: bool) -> Iterator[tuple]:
    """A policy node told to load ``missing``, a probe, and optionally a safety monitor whose hold
    pose is set (so that its watchdogs, not HALT_FOR_NO_REFERENCE, decide), all spun."""
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    made: list = []
    try:
        policy = PolicyNode(
            context=context,
            parameter_overrides=to_parameters(
                {'model': missing, 'device': 'cpu', 'dtype': 'float32', 'status_period': 0.2}
            ),
        )
        made.append(policy)
        probe = Probe(context=context)
        made.append(probe)
        probe.listen(PolicyStatus, '/openvla/policy_status')
        probe.listen(ActionChunk, '/openvla/action_chunk')
        monitor = None
        if with_monitor:
            params = [Parameter(k, value=[float(x) for x in v]) for k, v in BOUNDS.items()]
            params.append(Parameter('base_frame', value=missing))
            monitor = SafetyMonitorNode(context=context, parameter_overrides=params)
            made.append(monitor)
            assert monitor.monitor.set_reference(get_kinematics('wx250s').fk(Q0), 1.0)
            probe.listen(SafetyStatus, '/openvla/safety_status')
        for node in made:
            executor.add_node(node)
        with spinning(executor, 0.02):
            yield policy, probe, monitor
    finally:
        for node in made:
            getattr(node, 'close', lambda: None)()
        executor.shutdown()
        for node in made:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def ours(probe: Probe, topic: str, missing: str) -> list:
    """This test's messages on topic: policy statuses naming ``missing`` as the model, safety
    statuses with ``missing`` as the frame_id."""
    return [
        m
        for m in probe.messages(topic)
        if getattr(m, 'model', None) == missing or m.header.frame_id == missing
    ]


def load_failed_statuses(probe: Probe, missing: str) -> list:
    return [
        s
        for s in ours(probe, '/openvla/policy_status', missing)
        if s.state == PolicyStatus.STATE_LOAD_FAILED
    ]


def test_a_missing_checkpoint_publishes_load_failed_and_stays_there(tmp_path):
    missing = str(tmp_path / 'no_such_checkpoint')
    with nodes(missing, with_monitor=False) as (policy, probe, _):
        wait_for(lambda: load_failed_statuses(probe, missing), 120, 'a STATE_LOAD_FAILED status')
        assert policy.load_failed and not policy.ready
        assert missing in load_failed_statuses(probe, missing)[0].message
        # an instruction after the failed load must not turn the status into RUNNING
        probe.clear('/openvla/policy_status')
        probe.publish(String, '/instruction', String(data='lift the block'), RELIABLE)
        wait_for(lambda: policy._instruction == 'lift the block', 10, 'the instruction')
        wait_for(
            lambda: len(ours(probe, '/openvla/policy_status', missing)) >= 3,
            10,
            'statuses after the instruction',
        )
        states = {s.state for s in ours(probe, '/openvla/policy_status', missing)}
        assert states == {PolicyStatus.STATE_LOAD_FAILED}
        assert probe.messages('/openvla/action_chunk') == []


def test_the_safety_monitor_holds_for_a_policy_that_failed_to_load(tmp_path):
    missing = str(tmp_path / 'no_such_checkpoint')
    with nodes(missing, with_monitor=True) as (policy, probe, _):
        wait_for(lambda: load_failed_statuses(probe, missing), 120, 'a STATE_LOAD_FAILED status')

        def policy_fault_holds() -> list:
            return [
                s
                for s in ours(probe, '/openvla/safety_status', missing)
                if s.state == SafetyStatus.STATE_HOLD and 'HALT_FOR_POLICY_FAULT' in s.reasons
            ]

        wait_for(policy_fault_holds, 10, 'a HALT_FOR_POLICY_FAULT hold')
        messages = [m for m in policy_fault_holds()[-1].messages if 'policy fault' in m]
        assert messages and 'could not load' in messages[0]
