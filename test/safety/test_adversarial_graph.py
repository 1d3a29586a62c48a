"""Issue 19 on the running graph (real rclpy, the in-process runner, the MuJoCo WidowX): a policy
that pushes at every face of the workspace, past it for seconds, then reverses; bursts of targets;
an e-stop while holding an object; a policy that dies.

Latencies are counted in control periods (safe targets published), not in wall time, where the
claim is about the control logic; "within 1 s" is the issue's own bound for the arm to move.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_helpers import Probe, RELIABLE, wait_for
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from openvla_ros.adapters.gripper import measured_opening
from openvla_ros.bringup.graph import GraphArgs, USE_SIM_TIME
from openvla_ros.bringup.profiles import load_profile
from openvla_ros.control import get_kinematics
from openvla_ros.harness.runner import GraphRunner
from openvla_ros.msg import ActionChunk, EndEffectorTarget, SafetyStatus
from openvla_ros.nodes._conversions import joint_positions, matrix_to_pose, pose_to_matrix

pytest.importorskip(
    'interbotix_xs_msgs.msg', reason='interbotix_xs_msgs fixture not built (scripts/setup_venv.sh)'
)

PROFILE = load_profile('widowx_bridge')
PERIOD = 1.0 / float(PROFILE.get('control_rate'))
LOW = np.array(PROFILE.common['workspace_low'])
HIGH = np.array(PROFILE.common['workspace_high'])
SAFETY = PROFILE.section('safety_monitor', 'safety')
MAX_STEP = float(SAFETY['max_step_translation'])
POLICY_TIMEOUT = float(SAFETY['policy_timeout'])
KIN = get_kinematics('wx250s')
ESTOP_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)


def start(policy: str = 'scripted'):
    args = GraphArgs(profile='widowx_bridge', sim=True, policy=policy, task='lift_block')
    sim = {'camera_rate': 10.0, 'image_width': 160, 'image_height': 120}
    runner = GraphRunner(args, overrides={'sim': sim})
    runner.start()
    # the graph runs on the simulator's clock (issue 20): the probe stamps its chunks with it too
    probe = runner.add_node(
        Probe, 'probe', parameter_overrides=[Parameter(USE_SIM_TIME, value=True)]
    )
    probe.listen(EndEffectorTarget, '/openvla/ee_target')
    probe.listen(EndEffectorTarget, '/openvla/safe_ee_target')
    probe.listen(SafetyStatus, '/openvla/safety_status')
    probe.listen(JointState, '/wx250s/joint_states', 50)
    return runner, probe


@pytest.fixture(scope='module')
def graph():
    runner, probe = start()
    wait_for(lambda: arm_pose(probe) is not None, 30, 'simulated joint states')
    wait_for(lambda: safe_pose(probe) is not None, 30, 'the first safe target')
    yield runner, probe
    runner.stop()


def arm_pose(probe: Probe) -> np.ndarray | None:
    for msg in reversed(probe.messages('/wx250s/joint_states')):
        q = joint_positions(msg, KIN.joint_names)
        if q is not None:
            return KIN.fk(q)
    return None


def arm_gripper(probe: Probe) -> float | None:
    for msg in reversed(probe.messages('/wx250s/joint_states')):
        opening = measured_opening('wx250s', msg.name, msg.position)
        if opening is not None:
            return opening
    return None


def safe_pose(probe: Probe) -> np.ndarray | None:
    msgs = probe.messages('/openvla/safe_ee_target')
    return pose_to_matrix(msgs[-1].pose) if msgs else None


def statuses(probe: Probe) -> list:
    return probe.messages('/openvla/safety_status')


def chunk(probe: Probe, delta, gripper: float = 1.0, n: int = 1) -> float:
    """Publishes a chunk of ``n`` equal bridge_orig actions stamped now; returns the wall time."""
    msg = ActionChunk()
    msg.header.stamp = probe.get_clock().now().to_msg()
    msg.dt = 0.2
    msg.num_actions, msg.action_dim = n, 7
    msg.actions = [float(v) for v in list(delta) + [gripper]] * n
    msg.action_space = 'bridge_orig'
    msg.gripper_convention = ActionChunk.GRIPPER_CONVENTION_OPEN_IS_ONE
    t = time.monotonic()
    probe.publish(ActionChunk, '/openvla/action_chunk', msg, RELIABLE)
    return t


def push(probe: Probe, delta, seconds: float, gripper: float = 1.0) -> None:
    """A policy that keeps asking for ``delta`` every 0.2 s (5 Hz, like OpenVLA on the WidowX)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        chunk(probe, delta, gripper)
        time.sleep(0.2)


CENTRE = np.array([0.3, 0.0, 0.15])
# the gripper pointing straight down (the profile's nominal): away from the wrist singularity
DOWN = Rotation.from_euler('xyz', PROFILE.common['orientation_nominal_rpy']).as_matrix()


def go_to_centre(probe: Probe) -> None:
    """Policy deltas toward the middle of the box, gripper down (each face starts there)."""
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        pose = safe_pose(probe)
        error = CENTRE - pose[:3, 3]
        turn = Rotation.from_matrix(DOWN @ pose[:3, :3].T).as_euler('xyz')
        if np.linalg.norm(error) < 0.01 and np.linalg.norm(turn) < 0.05:
            time.sleep(0.5)
            return
        chunk(probe, list(np.clip(error, -0.05, 0.05)) + list(np.clip(turn, -0.25, 0.25)))
        time.sleep(0.2)
    raise AssertionError(f'the target did not return to the centre: {safe_pose(probe)[:3, 3]}')


def after(probe: Probe, topic: str, t: float) -> list:
    return [m for s, m in probe.stamped(topic) if s > t]


def reset(probe: Probe) -> bool:
    client = probe.create_client(Trigger, '/safety_monitor/reset')
    assert client.wait_for_service(timeout_sec=5)
    future = client.call_async(Trigger.Request())
    wait_for(future.done, 5, 'the reset answer')
    probe.destroy_client(client)
    return future.result().success


def ros_now(probe: Probe) -> float:
    return probe.get_clock().now().nanoseconds * 1e-9


def taken_at(runner: GraphRunner, axis: int, value: float, since: float) -> float:
    """When the limiter consumed the action whose delta on ``axis`` is ``value`` (its ``now``).

    Counting from there measures the control logic, not the DDS transport on a loaded machine.
    """
    limiter = runner.nodes['action_limiter'].limiter
    found: list[float] = []

    def consumed() -> bool:
        for record in limiter.history:
            if record.consumed_at >= since and abs(record.action.delta[axis] - value) < 1e-9:
                found.append(record.consumed_at)
                return True
        return False

    wait_for(consumed, 5, 'the limiter to take the chunk')
    return found[0]


def safe_since(probe: Probe, stamp: float) -> list:
    return [
        m for m in probe.messages('/openvla/safe_ee_target')
        if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 >= stamp
    ]


FACES = [(axis, sign) for axis in range(3) for sign in (+1, -1)]


@pytest.mark.parametrize('axis,sign', FACES, ids=[f'{"xyz"[a]}{"+-"[s < 0]}' for a, s in FACES])
def test_past_a_face_for_seconds_then_a_reversal_moves_back_within_two_periods(graph, axis, sign):
    runner, probe = graph
    go_to_centre(probe)
    delta = np.zeros(6)
    delta[axis] = 0.05 * sign
    push(probe, delta, 3.0)  # past the face: the box is at most 0.45 m wide, 0.2 m/s per axis
    face = HIGH[axis] if sign > 0 else LOW[axis]
    wait_for(lambda: abs(safe_pose(probe)[axis, 3] - face) < 0.03, 10, 'the target near the face')
    time.sleep(0.5)
    at_face = safe_pose(probe)[axis, 3]
    assert LOW[axis] - 1e-6 <= at_face <= HIGH[axis] + 1e-6
    arm_before = arm_pose(probe)[:3, 3].copy()
    reverse = -0.5 * delta
    t_ros = ros_now(probe)
    chunk(probe, reverse)
    taken = taken_at(runner, axis, reverse[axis], t_ros)
    wait_for(lambda: len(safe_since(probe, taken)) >= 2, 5, 'two safe targets')
    first = safe_since(probe, taken)[:2]  # the two periods after the limiter took the reversal
    moved_back = [-sign * (pose_to_matrix(m.pose)[axis, 3] - at_face) for m in first]
    reasons = [list(m.reasons) for m in statuses(probe)[-10:]]
    assert max(moved_back) > 1e-4, f'no motion back within two periods: {moved_back} {reasons}'
    # and the arm itself moves within 1 s
    wait_for(lambda: np.linalg.norm(arm_pose(probe)[:3, 3] - arm_before) > 0.003, 1.0,
             'the arm to move after the reversal')
    time.sleep(1.0)  # let the reversal finish before the next face


def test_a_reachable_command_after_ik_failures_moves_the_arm_within_one_second(graph):
    runner, probe = graph
    go_to_centre(probe)
    t0 = time.monotonic()
    # far top corner, wrist pitched and turned: beyond what the 6-DOF WidowX reaches
    push(probe, [0.05, -0.05, 0.05, 0.0, 0.25, 0.25], 4.0)
    seen = {r for s, m in probe.stamped('/openvla/safety_status') if s > t0 for r in m.reasons}
    refused = seen & {'HALT_FOR_IK_FAILURE', 'HALT_FOR_JOINT_LIMIT',
                      'HALT_FOR_JOINT_VELOCITY_LIMIT'}
    assert refused, f'the push did not reach an IK or joint-limit refusal (reasons: {seen})'
    arm_before = arm_pose(probe)[:3, 3].copy()
    t = chunk(probe, [-0.03, 0.03, -0.03, 0.0, -0.1, -0.1], n=2)
    wait_for(lambda: np.linalg.norm(arm_pose(probe)[:3, 3] - arm_before) > 0.003, 1.0,
             'the arm to move after an IK failure')
    later = after(probe, '/openvla/safety_status', t)
    assert later and later[-1].state != SafetyStatus.STATE_FAULT
    time.sleep(1.5)


def test_a_burst_of_targets_moves_the_target_no_faster_than_the_velocity_limit(graph):
    runner, probe = graph
    wait_for(lambda: safe_pose(probe) is not None, 5, 'a safe target')
    time.sleep(0.5)
    start = safe_pose(probe)
    far = start.copy()
    far[:3, 3] = np.clip(start[:3, 3] + [0.0, 0.15, -0.1], LOW, HIGH)
    burst = EndEffectorTarget(pose=matrix_to_pose(far), gripper=1.0, hold=False)
    burst.header.frame_id = 'wx250s/base_link'
    t0 = time.monotonic()
    for _ in range(20):  # a second publisher: 20 targets at once
        probe.publish(EndEffectorTarget, '/openvla/ee_target', burst, RELIABLE)
    t1 = time.monotonic()
    wait_for(lambda: len(after(probe, '/openvla/safe_ee_target', t1)) >= 1, 5, 'safe targets')
    stamped = [(s, m) for s, m in probe.stamped('/openvla/safe_ee_target') if s > t0]
    span = stamped[-1][0] - t0
    reach = max(np.linalg.norm(pose_to_matrix(m.pose)[:3, 3] - start[:3, 3]) for _, m in stamped)
    # per real time: one period's step, plus the step of the time that passed (receipt times)
    assert reach <= MAX_STEP * (1.0 + (span + PERIOD) / PERIOD) + 1e-6, (reach, span)
    assert reach < 0.5 * np.linalg.norm(far[:3, 3] - start[:3, 3]), 'the burst was obeyed at once'
    time.sleep(1.0)


def test_the_gripper_is_kept_across_estop_and_reset(graph):
    runner, probe = graph
    push(probe, np.zeros(6), 1.5, gripper=0.0)  # close
    wait_for(lambda: arm_gripper(probe) < 0.3, 10, 'the gripper to close')
    probe.publish(Bool, '/openvla/estop', Bool(data=True), ESTOP_QOS)
    wait_for(lambda: statuses(probe)[-1].state == SafetyStatus.STATE_ESTOP, 5, 'ESTOP')
    time.sleep(0.5)
    probe.publish(Bool, '/openvla/estop', Bool(data=False), ESTOP_QOS)
    time.sleep(0.3)
    closed = arm_gripper(probe)
    t = time.monotonic()
    assert reset(probe)
    time.sleep(1.5)
    targets = after(probe, '/openvla/safe_ee_target', t)
    assert targets and max(m.gripper for m in targets) < 0.5, 'the gripper target opened'
    assert arm_gripper(probe) < closed + 0.1, 'the fingers opened after the reset'
    push(probe, np.zeros(6), 1.0, gripper=1.0)  # leave it open for the next test
    wait_for(lambda: arm_gripper(probe) > 0.7, 10, 'the gripper to open again')


def test_a_dead_policy_holds_with_its_own_reason_and_idle_does_not(graph):
    # last in this module: it kills the shared graph's policy (a second graph on the same DDS
    # domain would keep the watchdog fed with the first graph's policy status)
    runner, probe = graph
    time.sleep(POLICY_TIMEOUT + 1.0)  # idle (no instruction): the policy watchdog is quiet
    assert 'HALT_FOR_STALE_POLICY' not in statuses(probe)[-1].reasons
    t_instruction = time.monotonic()
    probe.publish(String, '/instruction', String(data='pick up the red block'), RELIABLE)
    wait_for(lambda: len(runner.nodes['action_limiter'].limiter.history) > 0 and any(
        not m.hold for m in after(probe, '/openvla/safe_ee_target', t_instruction)),
        30, 'the policy to move the arm')
    node = runner.nodes.pop('scripted_policy')  # the policy dies: no chunk, no status
    runner.executor.remove_node(node)
    node.destroy_node()
    t = time.monotonic()
    wait_for(lambda: 'HALT_FOR_STALE_POLICY' in statuses(probe)[-1].reasons,
             POLICY_TIMEOUT + 5.0, 'the policy watchdog')
    assert statuses(probe)[-1].state == SafetyStatus.STATE_HOLD
    assert time.monotonic() - t >= POLICY_TIMEOUT - 0.5
    time.sleep(0.5)
    held = after(probe, '/openvla/safe_ee_target', time.monotonic() - 0.4)
    assert held and all(m.hold for m in held)
