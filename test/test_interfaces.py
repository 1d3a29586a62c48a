"""Our messages over real rclpy and DDS: every field survives a round trip between two nodes."""

from __future__ import annotations

import math
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

from openvla_ros.msg import ActionChunk, EndEffectorTarget, PolicyStatus, SafetyStatus


def round_trip(context, msg_type, msg, timeout: float = 10.0):
    """Publishes msg from one node and returns what a second node receives."""
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    talker = rclpy.create_node('talker', context=context)
    listener = rclpy.create_node('listener', context=context)
    received: list = []
    done = threading.Event()

    def on_msg(m):
        received.append(m)
        done.set()

    listener.create_subscription(msg_type, 'round_trip', on_msg, qos)
    pub = talker.create_publisher(msg_type, 'round_trip', qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        deadline = talker.get_clock().now().nanoseconds + int(timeout * 1e9)
        while not done.is_set() and talker.get_clock().now().nanoseconds < deadline:
            if pub.get_subscription_count() > 0:
                pub.publish(msg)
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
    assert received, f'no {msg_type.__name__} received within {timeout} s'
    return received[0]


def test_action_chunk_survives_a_round_trip_with_every_field(ros_context):
    msg = ActionChunk()
    msg.header.stamp.sec = 1700000000
    msg.header.stamp.nanosec = 123456789
    msg.header.frame_id = 'wx250s/base_link'
    msg.instruction = 'put the spoon on the towel'
    msg.model = 'openvla/openvla-7b'
    msg.unnorm_key = 'bridge_orig'
    msg.action_space = 'bridge_orig'
    msg.dt = 0.2
    msg.action_dim = 7
    msg.num_actions = 2
    actions = [0.01, -0.02, 0.03, 0.1, -0.1, 0.05, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    msg.actions = actions
    msg.gripper_convention = ActionChunk.GRIPPER_CONVENTION_OPEN_IS_ONE
    tokens = [31872, 31800, 31900, 31744, 31999, 31850, 31744]
    msg.tokens = tokens
    msg.inference_latency = 0.1234

    got = round_trip(ros_context, ActionChunk, msg)

    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (1700000000, 123456789)
    assert got.header.frame_id == 'wx250s/base_link'
    assert got.instruction == 'put the spoon on the towel'
    assert got.model == 'openvla/openvla-7b'
    assert got.unnorm_key == 'bridge_orig'
    assert got.action_space == 'bridge_orig'
    assert got.dt == 0.2
    assert got.action_dim == 7
    assert got.num_actions == 2
    assert list(got.actions) == actions
    assert got.gripper_convention == ActionChunk.GRIPPER_CONVENTION_OPEN_IS_ONE
    assert list(got.tokens) == tokens
    assert got.inference_latency == 0.1234


def test_safety_status_survives_a_round_trip_with_every_field(ros_context):
    msg = SafetyStatus()
    msg.header.stamp.sec = 42
    msg.header.stamp.nanosec = 7
    msg.header.frame_id = 'fr3_link0'
    msg.state = SafetyStatus.STATE_LIMITED
    reasons = ['CLIP_TO_WORKSPACE', 'CLIP_STEP_TRANSLATION']
    messages = ['target z 0.5 m above the box (max 0.3 m)', 'step 0.08 m > 0.02 m']
    msg.reasons = reasons
    msg.messages = messages
    msg.estop_latched = False
    msg.passed = 10
    msg.clipped = 2**40
    msg.rejected = 3
    msg.image_age = 0.05
    msg.joint_state_age = float('nan')
    msg.command_age = 1.5

    got = round_trip(ros_context, SafetyStatus, msg)

    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (42, 7)
    assert got.header.frame_id == 'fr3_link0'
    assert got.state == SafetyStatus.STATE_LIMITED
    assert list(got.reasons) == reasons
    assert list(got.messages) == messages
    assert got.estop_latched is False
    assert (got.passed, got.clipped, got.rejected) == (10, 2**40, 3)
    assert got.image_age == 0.05
    assert math.isnan(got.joint_state_age)
    assert got.command_age == 1.5


def test_end_effector_target_and_policy_status_round_trip(ros_context):
    target = EndEffectorTarget()
    target.header.frame_id = 'wx250s/base_link'
    target.pose.position.x, target.pose.position.y, target.pose.position.z = 0.3, -0.09, 0.26
    target.pose.orientation.y, target.pose.orientation.w = -0.259, -0.966
    target.gripper = 0.5
    target.hold = True
    got = round_trip(ros_context, EndEffectorTarget, target)
    assert (got.pose.position.x, got.pose.position.y, got.pose.position.z) == (0.3, -0.09, 0.26)
    assert (got.pose.orientation.y, got.pose.orientation.w) == (-0.259, -0.966)
    assert got.gripper == 0.5 and got.hold is True

    status = PolicyStatus(
        state=PolicyStatus.STATE_RUNNING,
        model='tiny',
        backend='local',
        instruction='lift the block',
        message='ok',
        predictions=5,
        refused=1,
        failed=2,
        latency_p50=0.1,
        latency_p90=0.2,
        rate_hz=4.9,
    )
    got = round_trip(ros_context, PolicyStatus, status)
    assert got.state == PolicyStatus.STATE_RUNNING
    assert (got.model, got.backend, got.instruction, got.message) == (
        'tiny',
        'local',
        'lift the block',
        'ok',
    )
    assert (got.predictions, got.refused, got.failed) == (5, 1, 2)
    assert (got.latency_p50, got.latency_p90, got.rate_hz) == (0.1, 0.2, 4.9)


def test_state_constants_match_the_documented_order():
    assert [
        SafetyStatus.STATE_OK,
        SafetyStatus.STATE_LIMITED,
        SafetyStatus.STATE_HOLD,
        SafetyStatus.STATE_ESTOP,
        SafetyStatus.STATE_FAULT,
    ] == [0, 1, 2, 3, 4]
    assert [
        PolicyStatus.STATE_IDLE,
        PolicyStatus.STATE_RUNNING,
        PolicyStatus.STATE_LOADING,
        PolicyStatus.STATE_ERROR,
        PolicyStatus.STATE_LOAD_FAILED,
    ] == [0, 1, 2, 3, 4]
    assert [
        ActionChunk.GRIPPER_CONVENTION_OPEN_IS_ONE,
        ActionChunk.GRIPPER_CONVENTION_CLOSED_IS_ONE,
        ActionChunk.GRIPPER_CONVENTION_SIGNED,
    ] == [0, 1, 2]
