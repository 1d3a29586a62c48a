"""ArmAdapterNode over real rclpy: each interface sends the driver's own message type on its topic.

The vendor types come from the fixture packages (scripts/build_fixture_interfaces.sh); a test that
needs one skips, naming the package, where it is not built.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import rclpy
from rclpy.action import ActionServer
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from ros_helpers import vendor

from openvla_ros.control.kinematics import get_kinematics
from openvla_ros.msg import EndEffectorTarget
from openvla_ros.nodes._conversions import matrix_to_pose

WX_Q = np.array([0.0, -0.5, 0.6, 0.0, 0.8, 0.0])
FR3_Q = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])
TIMEOUT = 10.0


class Harness:
    """The adapter node plus a probe node (publishes targets and joint states, records outputs)."""

    def __init__(self, context, **params):
        from openvla_ros.nodes.arm_adapter_node import ArmAdapterNode
        self.robot = params.get('robot', 'wx250s')
        self.context = context
        self.adapter = ArmAdapterNode(
            context=context, cli_args=['--ros-args', '-r', 'joint_states:=/test/joint_states'],
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.probe = rclpy.create_node('probe', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.adapter)
        self.executor.add_node(self.probe)
        self.received: dict[str, list] = {}
        self.target_pub = self.probe.create_publisher(EndEffectorTarget,
                                                      '/openvla/safe_ee_target', 10)
        from sensor_msgs.msg import JointState
        self.joint_pub = self.probe.create_publisher(JointState, '/test/joint_states', 10)
        from diagnostic_msgs.msg import DiagnosticArray
        self.listen(DiagnosticArray, '/diagnostics')

    def listen(self, msg_type, topic: str) -> list:
        box = self.received.setdefault(topic, [])
        self.probe.create_subscription(msg_type, topic, box.append, 10)
        return box

    def spin_until(self, predicate, timeout: float = TIMEOUT) -> bool:
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not predicate():
                if deadline.is_set():
                    return False
                self.executor.spin_once(timeout_sec=0.05)
            return True
        finally:
            timer.cancel()

    def spin_for(self, seconds: float) -> None:
        """Spins for ``seconds`` of real time: the joint-velocity check allows the motion of the
        time since the last command, so a test that moves between targets must let time pass."""
        end = threading.Event()
        timer = threading.Timer(seconds, end.set)
        timer.start()
        try:
            while not end.is_set():
                self.executor.spin_once(timeout_sec=0.01)
        finally:
            timer.cancel()

    def send_joint_states(self, names, q) -> None:
        from sensor_msgs.msg import JointState
        msg = JointState(name=list(names), position=[float(v) for v in q])
        assert self.spin_until(lambda: self._publish(self.joint_pub, msg)
                               and self.adapter.measured_q is not None)

    @staticmethod
    def _publish(pub, msg) -> bool:
        if pub.get_subscription_count() > 0:
            pub.publish(msg)
            return True
        return False

    def send_target(self, pose: np.ndarray, gripper: float, *, hold: bool = False,
                    frame_id: str = 'base') -> None:
        msg = EndEffectorTarget(pose=matrix_to_pose(pose), gripper=gripper, hold=hold)
        msg.header.frame_id = frame_id
        count = self.adapter.counts['targets']
        assert self.spin_until(lambda: self.target_pub.get_subscription_count() > 0)
        self.target_pub.publish(msg)
        assert self.spin_until(lambda: self.adapter.counts['targets'] > count)

    def wait_for(self, topic: str, n: int = 1) -> list:
        box = self.received[topic]
        assert self.spin_until(lambda: len(box) >= n), f'nothing on {topic}'
        return box

    def wait_for_publisher_match(self, topic: str) -> None:
        assert self.spin_until(lambda: self.probe.count_publishers(topic) > 0
                               and all(s.get_publisher_count() > 0 for s in
                                       self.probe.subscriptions if s.topic_name == topic))

    def close(self) -> None:
        self.executor.shutdown()
        self.adapter.close()
        self.adapter.destroy_node()
        self.probe.destroy_node()


@pytest.fixture
def harness(ros_context):
    made: list[Harness] = []

    def make(**params) -> Harness:
        made.append(Harness(ros_context, **params))
        return made[-1]

    yield make
    for h in made:
        h.close()


def shifted(pose: np.ndarray, dx: float = 0.0, dz: float = 0.0) -> np.ndarray:
    out = pose.copy()
    out[0, 3] += dx
    out[2, 3] += dz
    return out


def test_xs_sdk_sends_joint_group_arm_and_gripper_pwm(harness):
    msgs = vendor('interbotix_xs_msgs.msg')
    h = harness(interface='xs_sdk', robot='wx250s', robot_name='wx250s')
    arm = h.listen(msgs.JointGroupCommand, '/wx250s/commands/joint_group')
    grip = h.listen(msgs.JointSingleCommand, '/wx250s/commands/joint_single')
    h.wait_for_publisher_match('/wx250s/commands/joint_group')
    h.wait_for_publisher_match('/wx250s/commands/joint_single')
    kin = get_kinematics('wx250s')
    h.send_joint_states(kin.joint_names + ('left_finger', 'right_finger'),
                        list(WX_Q) + [0.03, -0.03])
    target = shifted(kin.fk(WX_Q), dx=0.01)
    h.send_target(target, 1.0)
    h.wait_for('/wx250s/commands/joint_group')
    h.wait_for('/wx250s/commands/joint_single')
    assert isinstance(arm[0], msgs.JointGroupCommand)
    assert arm[0].name == 'arm' and len(arm[0].cmd) == 6
    np.testing.assert_allclose(kin.fk(np.array(arm[0].cmd, dtype=float)), target, atol=2e-3)
    assert grip[0].name == 'gripper' and grip[0].cmd == 250.0

    h.spin_for(h.adapter.period)  # one period later: 1 cm back is within the joint speeds
    h.send_target(kin.fk(WX_Q), 0.0, hold=True)  # hold re-sends the hold pose
    h.wait_for('/wx250s/commands/joint_group', 2)
    assert h.adapter.last_result.reason == 'HOLD_RESENT'
    np.testing.assert_allclose(np.array(arm[1].cmd, dtype=float), WX_Q, atol=2e-3)
    h.wait_for('/wx250s/commands/joint_single', 2)
    assert grip[1].cmd == -250.0


def test_out_of_limit_target_is_refused_with_a_reason_and_nothing_sent(harness):
    msgs = vendor('interbotix_xs_msgs.msg')
    h = harness(interface='xs_sdk', robot='wx250s')
    arm = h.listen(msgs.JointGroupCommand, '/wx250s/commands/joint_group')
    h.wait_for_publisher_match('/wx250s/commands/joint_group')
    kin = get_kinematics('wx250s')
    h.send_target(kin.fk(WX_Q), 1.0)  # before any joint state: nothing
    assert h.adapter.last_result.reason == 'WAIT_FOR_JOINT_STATES'
    h.send_joint_states(kin.joint_names, WX_Q)
    q_bad = WX_Q.copy()
    q_bad[4] = 2.3  # wrist_angle beyond its 2.147 rad upper limit
    h.send_target(kin.fk(q_bad), 1.0)
    assert h.adapter.last_result.reason == 'IK_JOINT_LIMIT'
    diagnostics = h.received['/diagnostics']
    assert h.spin_until(lambda: any(
        'IK_JOINT_LIMIT' in s.message and s.level == b'\x01'
        for d in diagnostics for s in d.status))
    h.spin_until(lambda: False, timeout=0.5)  # give a wrong command time to arrive
    assert arm == []
    assert h.adapter.counts == {'sent': 0, 'refused': 2, 'targets': 2}


def test_ros2_control_sends_trajectories_for_arm_and_left_finger(harness):
    from trajectory_msgs.msg import JointTrajectory
    h = harness(interface='ros2_control', robot='wx250s', robot_name='arm1', control_rate=4.0)
    arm = h.listen(JointTrajectory, '/arm1/arm_controller/joint_trajectory')
    grip = h.listen(JointTrajectory, '/arm1/gripper_controller/joint_trajectory')
    h.wait_for_publisher_match('/arm1/arm_controller/joint_trajectory')
    h.wait_for_publisher_match('/arm1/gripper_controller/joint_trajectory')
    kin = get_kinematics('wx250s')
    h.send_joint_states(kin.joint_names, WX_Q)
    target = shifted(kin.fk(WX_Q), dz=-0.01)
    h.send_target(target, 0.0)
    h.wait_for('/arm1/arm_controller/joint_trajectory')
    h.wait_for('/arm1/gripper_controller/joint_trajectory')
    msg = arm[0]
    assert list(msg.joint_names) == list(kin.joint_names)
    assert len(msg.points) == 1
    assert (msg.points[0].time_from_start.sec, msg.points[0].time_from_start.nanosec) == (
        0, 250_000_000)
    np.testing.assert_allclose(kin.fk(np.array(msg.points[0].positions)), target, atol=2e-3)
    assert list(grip[0].joint_names) == ['left_finger']
    assert grip[0].points[0].positions[0] == pytest.approx(0.015)


def test_franka_jtc_sends_a_trajectory_and_a_move_goal_once(harness):
    franka = vendor('franka_msgs.action')
    from trajectory_msgs.msg import JointTrajectory
    h = harness(interface='franka_jtc', robot='fr3')
    goals: list = []

    def execute(goal_handle):
        goals.append(goal_handle.request)
        goal_handle.succeed()
        return franka.Move.Result(success=True)

    server = ActionServer(h.probe, franka.Move, '/franka_gripper/move', execute)
    arm = h.listen(JointTrajectory, '/fr3_arm_controller/joint_trajectory')
    h.wait_for_publisher_match('/fr3_arm_controller/joint_trajectory')
    assert h.spin_until(lambda: h.adapter._gripper_clients['move'][0].server_is_ready())
    kin = get_kinematics('fr3')
    h.send_joint_states(kin.joint_names, FR3_Q)
    h.send_target(kin.fk(FR3_Q), 1.0)
    h.send_target(kin.fk(FR3_Q), 0.99)  # no meaningful change: no second goal
    h.wait_for('/fr3_arm_controller/joint_trajectory', 2)
    assert h.spin_until(lambda: len(goals) >= 1)
    h.spin_until(lambda: False, timeout=0.3)
    assert list(arm[0].joint_names) == [f'fr3_joint{i}' for i in range(1, 8)]
    np.testing.assert_allclose(arm[0].points[0].positions, FR3_Q, atol=2e-3)
    assert len(goals) == 1 and isinstance(goals[0], franka.Move.Goal)
    assert goals[0].width == pytest.approx(0.08) and goals[0].speed == pytest.approx(0.1)
    server.destroy()


def test_franka_impedance_sends_equilibrium_pose_and_a_grasp_goal(harness):
    franka = vendor('franka_msgs.action')
    from geometry_msgs.msg import PoseStamped
    topic = '/my_impedance/equilibrium_pose'
    h = harness(interface='franka_impedance', robot='fr3', equilibrium_pose_topic=topic,
                frame_id='fr3_link0')
    goals: list = []

    def execute(goal_handle):
        goals.append(goal_handle.request)
        goal_handle.succeed()
        return franka.Grasp.Result(success=True)

    server = ActionServer(h.probe, franka.Grasp, '/franka_gripper/grasp', execute)
    poses = h.listen(PoseStamped, topic)
    h.wait_for_publisher_match(topic)
    assert h.spin_until(lambda: h.adapter._gripper_clients['grasp'][0].server_is_ready())
    kin = get_kinematics('fr3')
    h.send_joint_states(kin.joint_names, FR3_Q)
    target = shifted(kin.fk(FR3_Q), dz=-0.02)
    h.send_target(target, 0.0)
    h.wait_for(topic)
    assert h.spin_until(lambda: len(goals) >= 1)
    p = poses[0].pose.position
    assert poses[0].header.frame_id == 'fr3_link0'
    np.testing.assert_allclose((p.x, p.y, p.z), target[:3, 3], atol=1e-9)
    assert isinstance(goals[0], franka.Grasp.Goal)
    assert goals[0].width == 0.0 and goals[0].force == pytest.approx(20.0)
    assert goals[0].epsilon.outer == pytest.approx(0.08)
    server.destroy()


def test_servo_publishes_a_clipped_twist_with_its_frame(harness):
    from geometry_msgs.msg import TwistStamped
    h = harness(interface='servo', robot='wx250s', max_linear_speed=0.05,
                servo_publish_rate=20.0, servo_start_service='')
    twists = h.listen(TwistStamped, '/servo_node/delta_twist_cmds')
    h.wait_for_publisher_match('/servo_node/delta_twist_cmds')
    kin = get_kinematics('wx250s')
    h.send_joint_states(kin.joint_names, WX_Q)
    h.send_target(shifted(kin.fk(WX_Q), dz=-0.05), 1.0, frame_id='wx250s/base_link')
    h.wait_for('/servo_node/delta_twist_cmds', 2)  # the target, then the republish timer
    t = twists[-1]
    assert t.header.frame_id == 'wx250s/base_link'
    assert (t.twist.linear.x, t.twist.linear.y) == pytest.approx((0.0, 0.0), abs=1e-9)
    assert t.twist.linear.z == pytest.approx(-0.05)


def test_constructor_contract_and_close_is_idempotent(ros_context):
    from openvla_ros.nodes.arm_adapter_node import ArmAdapterNode
    node = ArmAdapterNode(node_name='adapter_x', namespace='/ns', context=ros_context,
                          parameter_overrides=[Parameter('interface', value='ros2_control')])
    assert node.get_fully_qualified_name() == '/ns/adapter_x'
    assert node.get_parameter('interface').value == 'ros2_control'
    assert node.describe_parameters(['control_rate'])[0].floating_point_range[0].to_value == 1000.0
    node.close()
    node.close()
    node.destroy_node()


def test_a_target_topic_past_the_monitor_is_refused_unless_marked_unsafe(ros_context):
    from openvla_ros.nodes.arm_adapter_node import ArmAdapterNode
    with pytest.raises(ValueError, match='bypasses the safety monitor'):
        ArmAdapterNode(node_name='adapter_bypass', context=ros_context, parameter_overrides=[
            Parameter('interface', value='ros2_control'),
            Parameter('target_topic', value='/openvla/ee_target')])
    node = ArmAdapterNode(node_name='adapter_unsafe', context=ros_context, parameter_overrides=[
        Parameter('interface', value='ros2_control'),
        Parameter('target_topic', value='/openvla/ee_target'),
        Parameter('unsafe_allow_unchecked_targets', value=True)])
    node.close()
    node.destroy_node()


def test_a_rejected_grasp_is_retried_once_then_reported_and_never_counts_as_sent(harness):
    franka = vendor('franka_msgs.action')
    from rclpy.action import GoalResponse
    h = harness(interface='franka_impedance', robot='fr3', frame_id='fr3_link0')
    requests: list = []

    def refuse(goal):
        requests.append(goal)
        return GoalResponse.REJECT

    server = ActionServer(h.probe, franka.Grasp, '/franka_gripper/grasp',
                          lambda g: franka.Grasp.Result(), goal_callback=refuse)
    assert h.spin_until(lambda: h.adapter._gripper_clients['grasp'][0].server_is_ready())
    kin = get_kinematics('fr3')
    h.send_joint_states(kin.joint_names, FR3_Q)
    h.send_target(kin.fk(FR3_Q), 0.0)
    assert h.spin_until(lambda: len(h.adapter.gripper_failures) == 1), 'no failure reported'
    assert len(requests) == 2, 'rejected goal not retried exactly once'
    assert 'rejected' in h.adapter.gripper_failures[0]
    h.spin_for(0.3)
    assert len(requests) == 2, 'a reported failure must not be re-sent every period'
    server.destroy()


def test_an_estop_cancels_a_grasp_in_flight(harness):
    franka = vendor('franka_msgs.action')
    from rclpy.action import CancelResponse
    from rclpy.task import Future
    from std_msgs.msg import Bool
    h = harness(interface='franka_impedance', robot='fr3', frame_id='fr3_link0')
    release = Future()
    outcome: list = []

    async def execute(goal_handle):
        await release  # the grasp runs until it is cancelled
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
            outcome.append('canceled')
        else:
            goal_handle.succeed()
            outcome.append('succeeded')
        return franka.Grasp.Result(success=False)

    def cancel(goal_handle):
        release.set_result(True)
        return CancelResponse.ACCEPT

    server = ActionServer(h.probe, franka.Grasp, '/franka_gripper/grasp', execute,
                          cancel_callback=cancel)
    assert h.spin_until(lambda: h.adapter._gripper_clients['grasp'][0].server_is_ready())
    kin = get_kinematics('fr3')
    h.send_joint_states(kin.joint_names, FR3_Q)
    h.send_target(kin.fk(FR3_Q), 0.0)
    assert h.spin_until(lambda: len(h.adapter._gripper_handles) == 1), 'grasp not accepted'
    estop = h.probe.create_publisher(Bool, '/openvla/estop', 10)
    assert h.spin_until(lambda: estop.get_subscription_count() > 0)
    estop.publish(Bool(data=True))
    assert h.spin_until(lambda: outcome == ['canceled']), 'the grasp was not cancelled'
    server.destroy()
