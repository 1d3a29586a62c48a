"""SimNode over real rclpy: it serves the driver interfaces, moves the simulated arm, and publishes
joint states, camera images and object poses."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import vendor

from openvla_ros.control.kinematics import get_kinematics
from openvla_ros.nodes._conversions import matrix_to_pose

TIMEOUT = 15.0


@pytest.fixture
def sim(ros_context):
    from openvla_ros.nodes.sim_node import SimNode
    made: list = []

    def make(**params):
        params = {'camera_rate': 5.0, 'image_width': 128, 'image_height': 96, **params}
        node = SimNode(context=ros_context,
                       parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        probe = rclpy.create_node('probe', context=ros_context)
        executor = SingleThreadedExecutor(context=ros_context)
        executor.add_node(node)
        executor.add_node(probe)
        made.append((node, probe, executor))
        return node, probe, executor

    yield make
    for node, probe, executor in made:
        executor.shutdown()
        node.close()
        node.destroy_node()
        probe.destroy_node()


def spin_until(executor, predicate, timeout: float = TIMEOUT) -> bool:
    expired = threading.Event()
    timer = threading.Timer(timeout, expired.set)
    timer.start()
    try:
        while not predicate():
            if expired.is_set():
                return False
            executor.spin_once(timeout_sec=0.05)
        return True
    finally:
        timer.cancel()


def latest(box: list):
    return box[-1] if box else None


def test_xs_sdk_sim_publishes_state_camera_objects_and_follows_commands(sim):
    msgs = vendor('interbotix_xs_msgs.msg')
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from visualization_msgs.msg import MarkerArray
    node, probe, executor = sim(robot='wx250s')
    states: list = []
    images: list = []
    infos: list = []
    objects: list = []
    probe.create_subscription(JointState, '/wx250s/joint_states', states.append, 10)
    probe.create_subscription(Image, '/camera/image_raw', images.append, qos_profile_sensor_data)
    probe.create_subscription(CameraInfo, '/camera/camera_info', infos.append,
                              qos_profile_sensor_data)
    probe.create_subscription(MarkerArray, '/openvla/sim/object_poses', objects.append, 10)
    assert spin_until(executor, lambda: states and images and infos and objects)

    state = states[-1]
    assert list(state.name) == ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle',
                                'wrist_rotate', 'left_finger', 'right_finger']
    image = images[-1]
    assert (image.height, image.width, image.encoding, image.step) == (96, 128, 'rgb8', 384)
    assert len(image.data) == 96 * 128 * 3
    assert infos[-1].k[0] > 0 and infos[-1].width == 128
    names = {m.text for m in objects[-1].markers}
    assert 'carrot' in names and all(m.ns == 'sim_objects' for m in objects[-1].markers)
    assert objects[-1].markers[0].header.frame_id == 'wx250s/base_link'

    group = probe.create_publisher(msgs.JointGroupCommand, '/wx250s/commands/joint_group', 10)
    single = probe.create_publisher(msgs.JointSingleCommand, '/wx250s/commands/joint_single', 10)
    assert spin_until(executor, lambda: group.get_subscription_count() > 0
                      and single.get_subscription_count() > 0)
    q = np.array(state.position[:6])
    q[0] += 0.3
    group.publish(msgs.JointGroupCommand(name='arm', cmd=[float(v) for v in q]))
    single.publish(msgs.JointSingleCommand(name='gripper', cmd=-250.0))
    finger_open = state.position[6]
    assert spin_until(executor, lambda: abs(latest(states).position[0] - q[0]) < 0.02
                      and latest(states).position[6] < finger_open - 0.01)


def test_adapter_and_sim_together_move_the_arm_to_the_target(sim, ros_context):
    vendor('interbotix_xs_msgs.msg')
    from openvla_ros.msg import EndEffectorTarget
    from openvla_ros.nodes.arm_adapter_node import ArmAdapterNode
    node, probe, executor = sim(robot='wx250s', camera_rate=0.0)
    adapter = ArmAdapterNode(
        context=ros_context, cli_args=['--ros-args', '-r', 'joint_states:=/wx250s/joint_states'],
        parameter_overrides=[Parameter('interface', value='xs_sdk')])
    executor.add_node(adapter)
    try:
        kin = get_kinematics('wx250s')
        assert spin_until(executor, lambda: adapter.measured_q is not None)
        start = kin.fk(adapter.measured_q)
        target = start.copy()
        target[:3, 3] += (0.0, 0.02, -0.02)
        pub = probe.create_publisher(EndEffectorTarget, '/openvla/safe_ee_target', 10)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0)
        pub.publish(EndEffectorTarget(pose=matrix_to_pose(target), gripper=1.0))
        assert spin_until(executor, lambda: adapter.counts['sent'] == 1)
        assert spin_until(executor, lambda: np.linalg.norm(
            kin.fk(adapter.measured_q)[:3, 3] - target[:3, 3]) < 0.005)
    finally:
        executor.remove_node(adapter)
        adapter.destroy_node()


def test_franka_impedance_sim_follows_the_equilibrium_pose_and_serves_gripper_actions(sim):
    franka = vendor('franka_msgs.action')
    vendor('control_msgs.action')
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    node, probe, executor = sim(robot='fr3', camera_rate=0.0, object_poses_rate=0.0)
    states: list = []
    probe.create_subscription(JointState, '/fr3/joint_states', states.append, 10)
    assert spin_until(executor, lambda: states)
    kin = get_kinematics('fr3')
    q0 = np.array(states[-1].position[:7])
    target = kin.fk(q0)
    target[2, 3] -= 0.03
    pub = probe.create_publisher(
        PoseStamped, '/cartesian_impedance_example_controller/equilibrium_pose', 10)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0)
    pub.publish(PoseStamped(pose=matrix_to_pose(target)))
    assert spin_until(executor, lambda: np.linalg.norm(
        kin.fk(np.array(latest(states).position[:7]))[:3, 3] - target[:3, 3]) < 0.005)

    client = ActionClient(probe, franka.Move, '/franka_gripper/move')
    assert client.wait_for_server(timeout_sec=0.0) or spin_until(
        executor, client.server_is_ready)
    future = client.send_goal_async(franka.Move.Goal(width=0.02, speed=0.1))
    assert spin_until(executor, future.done) and future.result().accepted
    result = future.result().get_result_async()
    assert spin_until(executor, result.done) and result.result().result.success
    assert spin_until(executor, lambda: math.isclose(
        sum(latest(states).position[7:9]), 0.02, abs_tol=0.004))
    client.destroy()


def test_a_non_finite_gripper_command_is_refused_and_the_simulator_goes_on(sim):
    """Gripper changes apply on the simulator's own thread at a control tick; a bad one must not
    stop that thread (and with it the clock)."""
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from openvla_ros.adapters.topics import gripper_trajectory_topic

    node, probe, executor = sim(robot='wx250s', interface='ros2_control', camera_rate=0.0)
    pub = probe.create_publisher(JointTrajectory, gripper_trajectory_topic('wx250s'), 10)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0)
    bad = JointTrajectory(joint_names=['left_finger'])
    bad.points.append(JointTrajectoryPoint(positions=[math.nan]))
    pub.publish(bad)
    assert spin_until(executor, lambda: not node._gripper_changes)  # taken at a tick
    good = JointTrajectory(joint_names=['left_finger'])
    good.points.append(JointTrajectoryPoint(positions=[0.02]))
    target = node.sim_time
    pub.publish(good)
    assert spin_until(
        executor,
        lambda: node.sim_time > target + 0.5
        and node.inspect(lambda world: math.isclose(world.data.ctrl[world._grip_act], 0.02)),
    ), 'the simulator stopped or ignored the next command'
