"""The whole stack in one process with real rclpy: policy -> limiter -> safety -> adapter ->
simulator.

The graph is the one the launch files use (openvla_ros.bringup.graph), run by
openvla_ros.harness.runner with sim:=true. Fault injection: the camera is relayed by the test, so
a stall is the relay stopping.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from ros_helpers import Probe, RELIABLE, wait_for
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from openvla_ros.bringup.graph import GraphArgs
from openvla_ros.bringup.profiles import load_profile
from openvla_ros.control import get_kinematics
from openvla_ros.harness.runner import GraphRunner
from openvla_ros.msg import ActionChunk, EndEffectorTarget, SafetyStatus
from openvla_ros.nodes._conversions import joint_positions, pose_to_matrix

interbotix = pytest.importorskip(
    'interbotix_xs_msgs.msg', reason='interbotix_xs_msgs fixture not built (scripts/setup_venv.sh)'
)

# What `ros2 topic pub` offers by default (reliable, volatile): the e-stop must work from it.
ROS2_TOPIC_PUB_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE)
SIM_CAMERA = '/sim/camera/image_raw'
CAMERA = '/camera/image_raw'
KIN = get_kinematics('wx250s')
BOX = load_profile('widowx_bridge').common  # the safe set is shared (the /** section)


class Relay(Probe):
    """Forwards the simulator's camera to the stack's camera topic until told to stall."""

    def __init__(self, node_name: str = 'camera_relay', **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.stalled = False
        self._out = self.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        self.create_subscription(Image, SIM_CAMERA, self.on_image, qos_profile_sensor_data)

    def on_image(self, msg: Image) -> None:
        if not self.stalled:
            self._out.publish(msg)


def start(policy: str, overrides=None, node_kwargs=None, task='lift_block'):
    args = GraphArgs(profile='widowx_bridge', sim=True, policy=policy, task=task)
    overrides = overrides or {}
    sim = {
        'camera_topic': SIM_CAMERA,
        'camera_rate': 10.0,
        'image_width': 320,
        'image_height': 240,
        **overrides.pop('sim', {}),
    }
    runner = GraphRunner(args, overrides={'sim': sim, **overrides}, node_kwargs=node_kwargs)
    runner.start()
    relay = runner.add_node(Relay, 'camera_relay')
    probe = runner.add_node(Probe, 'probe')
    probe.listen(ActionChunk, '/openvla/action_chunk')
    probe.listen(EndEffectorTarget, '/openvla/ee_target')
    probe.listen(EndEffectorTarget, '/openvla/safe_ee_target')
    probe.listen(SafetyStatus, '/openvla/safety_status')
    probe.listen(JointState, '/wx250s/joint_states', 50)
    probe.listen(interbotix.JointGroupCommand, '/wx250s/commands/joint_group')
    probe.listen(interbotix.JointSingleCommand, '/wx250s/commands/joint_single')
    return runner, relay, probe


def arm_q(probe: Probe) -> np.ndarray | None:
    for msg in reversed(probe.messages('/wx250s/joint_states')):
        q = joint_positions(msg, KIN.joint_names)
        if q is not None:
            return q
    return None


def instruct(probe: Probe, text: str) -> None:
    probe.publish(String, '/instruction', String(data=text), RELIABLE)


def state(probe: Probe) -> int | None:
    statuses = probe.messages('/openvla/safety_status')
    return statuses[-1].state if statuses else None


@pytest.fixture
def scripted():
    runner, relay, probe = start('scripted')
    yield runner, relay, probe
    runner.stop()


def test_instruction_moves_the_simulated_arm_through_every_stage(scripted):
    runner, relay, probe = scripted
    wait_for(lambda: arm_q(probe) is not None, 20, 'simulated joint states')
    q0 = arm_q(probe)
    instruct(probe, 'pick up the red block')
    wait_for(
        lambda: len(probe.messages('/wx250s/commands/joint_group')) >= 10,
        30,
        'adapter joint_group commands',
    )
    wait_for(lambda: np.max(np.abs(arm_q(probe) - q0)) > 0.05, 30, 'the arm to move')
    chunk = probe.messages('/openvla/action_chunk')[0]
    assert chunk.model == 'scripted_expert' and chunk.action_space == 'bridge_orig'
    command = probe.messages('/wx250s/commands/joint_group')[-1]
    assert command.name == 'arm' and len(command.cmd) == 6
    assert probe.messages('/openvla/safe_ee_target')[-1].header.frame_id == 'wx250s/base_link'


def test_safe_targets_stay_in_the_box_and_the_arm_follows_them(scripted):
    runner, relay, probe = scripted
    wait_for(lambda: arm_q(probe) is not None, 20, 'simulated joint states')
    instruct(probe, 'pick up the red block')
    time.sleep(6.0)  # let the expert drive the arm for 30 policy steps
    targets = [pose_to_matrix(m.pose) for m in probe.messages('/openvla/safe_ee_target')]
    assert len(targets) > 50
    low, high = np.array(BOX['workspace_low']), np.array(BOX['workspace_high'])
    positions = np.array([t[:3, 3] for t in targets])
    assert np.all(positions >= low - 1e-9) and np.all(positions <= high + 1e-9)
    # tracking: the reached TCP pose follows the commanded one within 2 cm once settled
    instruct(probe, '')
    time.sleep(1.5)
    reached = KIN.fk(arm_q(probe))[:3, 3]
    commanded = pose_to_matrix(probe.messages('/openvla/safe_ee_target')[-1].pose)[:3, 3]
    assert np.linalg.norm(reached - commanded) < 0.02, (reached, commanded)


def test_estop_halts_the_arm_within_one_control_period_and_reset_resumes(scripted):
    runner, relay, probe = scripted
    wait_for(lambda: arm_q(probe) is not None, 20, 'simulated joint states')
    instruct(probe, 'pick up the red block')
    wait_for(lambda: len(probe.messages('/wx250s/commands/joint_group')) >= 10, 30, 'motion')
    period = 1.0 / load_profile('widowx_bridge').get('control_rate')
    t_estop = time.monotonic()
    probe.publish(Bool, '/openvla/estop', Bool(data=True), ROS2_TOPIC_PUB_QOS)
    wait_for(lambda: state(probe) == SafetyStatus.STATE_ESTOP, 5, 'ESTOP state')
    holds = [(t, m) for t, m in probe.stamped('/openvla/safe_ee_target') if t > t_estop and m.hold]
    assert holds and holds[0][0] - t_estop <= period + 0.05, 'first hold later than one period'
    # nothing but hold after the e-stop (counted from its status: the first hold after t_estop may
    # be a refusal hold that came just before the monitor took the e-stop)
    time.sleep(1.0)
    t_state = next(t for t, m in probe.stamped('/openvla/safety_status')
                   if t > t_estop and m.state == SafetyStatus.STATE_ESTOP)
    after = [m for t, m in probe.stamped('/openvla/safe_ee_target') if t > t_state]
    assert after and all(m.hold for m in after)
    q_a = arm_q(probe)
    time.sleep(1.0)
    assert np.max(np.abs(arm_q(probe) - q_a)) < 0.01, 'the arm kept moving under e-stop'
    # reset refused while engaged, accepted after release
    client = probe.create_client(Trigger, '/safety_monitor/reset')
    assert client.wait_for_service(timeout_sec=5)
    result = client.call_async(Trigger.Request())
    wait_for(result.done, 5, 'reset answer')
    assert result.result().success is False
    probe.publish(Bool, '/openvla/estop', Bool(data=False), ROS2_TOPIC_PUB_QOS)
    time.sleep(0.2)
    result = client.call_async(Trigger.Request())
    wait_for(result.done, 5, 'reset answer')
    assert result.result().success is True
    probe.clear('/openvla/safe_ee_target')
    wait_for(
        lambda: any(not m.hold for m in probe.messages('/openvla/safe_ee_target')),
        15,
        'motion to resume after reset',
    )


def test_a_camera_stall_moves_the_monitor_to_hold_and_the_arm_stops(scripted):
    runner, relay, probe = scripted
    wait_for(lambda: arm_q(probe) is not None, 20, 'simulated joint states')
    instruct(probe, 'pick up the red block')
    wait_for(lambda: len(probe.messages('/wx250s/commands/joint_group')) >= 10, 30, 'motion')
    relay.stalled = True
    wait_for(
        lambda: (
            state(probe) == SafetyStatus.STATE_HOLD
            and 'HALT_FOR_STALE_CAMERA' in probe.messages('/openvla/safety_status')[-1].reasons
        ),
        5,
        'HOLD for a stale camera',
    )
    time.sleep(0.5)
    q_a = arm_q(probe)
    time.sleep(1.0)
    assert np.max(np.abs(arm_q(probe) - q_a)) < 0.01, 'the arm kept moving with a dead camera'
    relay.stalled = False
    wait_for(
        lambda: state(probe) in (SafetyStatus.STATE_OK, SafetyStatus.STATE_LIMITED),
        10,
        'recovery when frames return',
    )


def test_the_tiny_openvla_model_drives_the_stack_and_an_empty_instruction_stops_it(tiny_model_dir):
    runner, relay, probe = start(
        'openvla',
        overrides={
            'policy_node': {
                'model': str(tiny_model_dir),
                'device': 'cpu',
                'dtype': 'float32',
                'max_image_age': 5.0,
            }
        },
    )
    try:
        wait_for(lambda: runner.nodes['policy_node']._backend is not None, 60, 'the tiny model')
        instruct(probe, 'put the spoon on the towel')
        wait_for(lambda: len(probe.messages('/openvla/action_chunk')) >= 2, 60, 'chunks')
        chunk = probe.messages('/openvla/action_chunk')[0]
        assert len(chunk.tokens) == 7 and chunk.unnorm_key == 'bridge_orig'
        wait_for(lambda: len(probe.messages('/wx250s/commands/joint_group')) >= 1, 20, 'commands')
        instruct(probe, '')
        time.sleep(2.0)  # an in-flight prediction may still land
        probe.clear('/openvla/action_chunk')
        time.sleep(2.0)
        assert probe.messages('/openvla/action_chunk') == []
        targets = probe.messages('/openvla/ee_target')[-5:]
        assert all(t.hold for t in targets), 'the limiter should hold once the queue is empty'
    finally:
        runner.stop()


def crash(runner: GraphRunner, name: str) -> None:
    """Takes a node out of the running graph the way a crash would: it stops publishing."""
    node = runner.nodes.pop(name)
    runner.executor.remove_node(node)
    getattr(node, 'close', lambda: None)()
    node.destroy_node()


def test_a_crashed_policy_leaves_the_arm_holding_its_last_target(scripted):
    runner, relay, probe = scripted
    wait_for(lambda: arm_q(probe) is not None, 20, 'simulated joint states')
    instruct(probe, 'pick up the red block')
    wait_for(lambda: len(probe.messages('/wx250s/commands/joint_group')) >= 10, 30, 'motion')
    crash(runner, 'scripted_policy')
    time.sleep(1.5)  # the queued actions play out, then the limiter holds
    probe.clear('/openvla/ee_target')
    time.sleep(1.0)
    targets = probe.messages('/openvla/ee_target')
    assert targets and all(t.hold for t in targets), 'the limiter kept moving without a policy'
    q_a = arm_q(probe)
    time.sleep(1.0)
    assert np.max(np.abs(arm_q(probe) - q_a)) < 0.01, 'the arm kept moving without a policy'


def test_a_crashed_rate_limiter_trips_the_command_watchdog_and_the_arm_holds(scripted):
    runner, relay, probe = scripted
    wait_for(lambda: arm_q(probe) is not None, 20, 'simulated joint states')
    instruct(probe, 'pick up the red block')
    wait_for(lambda: len(probe.messages('/wx250s/commands/joint_group')) >= 10, 30, 'motion')
    crash(runner, 'action_limiter')
    wait_for(lambda: 'HALT_FOR_STALE_COMMANDS' in probe.messages(
        '/openvla/safety_status')[-1].reasons, 5, 'the command watchdog')
    probe.clear('/openvla/safe_ee_target')
    time.sleep(0.5)
    held = probe.messages('/openvla/safe_ee_target')
    assert held and all(t.hold for t in held)
    q_a = arm_q(probe)
    time.sleep(1.0)
    assert np.max(np.abs(arm_q(probe) - q_a)) < 0.01, 'the arm kept moving without commands'
