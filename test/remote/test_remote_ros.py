"""The remote backend inside the ROS stack: killing the policy server makes the policy node report
it and the safety monitor hold the (simulated) arm; a restarted server lets it move again."""

from __future__ import annotations

import time

import numpy as np
import pytest
from remote_helpers import start_server
from ros_helpers import Probe, RELIABLE, wait_for
from std_msgs.msg import String

from openvla_ros.bringup.graph import GraphArgs
from openvla_ros.harness.runner import GraphRunner
from openvla_ros.msg import ActionChunk, EndEffectorTarget, PolicyStatus, SafetyStatus

pytest.importorskip('interbotix_xs_msgs.msg', reason='interbotix_xs_msgs fixture not built')


def test_killing_the_policy_server_holds_the_arm_and_a_restart_resumes(policy):
    server = start_server(policy)
    runner = GraphRunner(
        GraphArgs(profile='widowx_bridge', sim=True, policy='remote', server_url=server.url),
        overrides={
            'sim': {'image_width': 320, 'image_height': 240, 'camera_rate': 10.0},
            'policy_node': {
                'unnorm_key': 'bridge_orig',
                'server_timeout': 1.0,
                'max_image_age': 5.0,
            },
        },
    )
    runner.start()
    try:
        probe = runner.add_node(Probe, 'probe')
        probe.listen(ActionChunk, '/openvla/action_chunk')
        probe.listen(PolicyStatus, '/openvla/policy_status')
        probe.listen(SafetyStatus, '/openvla/safety_status')
        probe.listen(EndEffectorTarget, '/openvla/safe_ee_target')
        node = runner.nodes['policy_node']
        wait_for(lambda: node.ready, 60, 'the remote backend to connect')
        probe.publish(String, '/instruction', String(data='put the spoon on the towel'), RELIABLE)
        wait_for(lambda: len(probe.messages('/openvla/action_chunk')) >= 2, 60, 'remote chunks')

        server.stop()  # the GPU box goes away
        wait_for(
            lambda: any(
                s.state == PolicyStatus.STATE_ERROR and 'unreachable' in s.message
                for s in probe.messages('/openvla/policy_status')
            ),
            15,
            'the policy node to report the unreachable server',
        )
        wait_for(
            lambda: (
                'HALT_FOR_POLICY_FAULT' in probe.messages('/openvla/safety_status')[-1].reasons
            ),
            10,
            'the monitor to hold for the policy',
        )
        time.sleep(0.5)
        probe.clear('/openvla/safe_ee_target')
        time.sleep(1.0)
        held = probe.messages('/openvla/safe_ee_target')
        assert held and all(t.hold for t in held), (
            'targets other than hold while the server is down'
        )
        positions = np.array(
            [[t.pose.position.x, t.pose.position.y, t.pose.position.z] for t in held]
        )
        assert np.ptp(positions, axis=0).max() < 1e-9, 'the held pose moved'

        restarted = start_server(policy, port=server.port)  # back on the same address
        try:
            probe.clear('/openvla/action_chunk')
            wait_for(
                lambda: len(probe.messages('/openvla/action_chunk')) >= 1,
                30,
                'chunks again after the restart',
            )
            wait_for(
                lambda: (
                    'HALT_FOR_POLICY_FAULT'
                    not in probe.messages('/openvla/safety_status')[-1].reasons
                ),
                10,
                'the hold to clear',
            )
        finally:
            restarted.stop()
    finally:
        runner.stop()
