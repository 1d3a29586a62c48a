"""The scripted expert is open-loop on its own integrated target: when the safety chain drops its
actions (a HOLD empties the limiter's queue, a refusal re-anchors it), the limiter settles
elsewhere, and the expert must re-plan from there instead of closing the gripper in the air."""

from __future__ import annotations

from types import SimpleNamespace

from builtin_interfaces.msg import Time as StampMsg
import numpy as np
import pytest
from rclpy.clock import ClockType
from rclpy.parameter import Parameter
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from openvla_ros.msg import EndEffectorTarget
from openvla_ros.nodes._conversions import matrix_to_pose


def _node(ros_context, *extra: Parameter):
    from openvla_ros.nodes.scripted_policy_node import ScriptedPolicyNode  # noqa: PLC0415
    from openvla_ros.sim.world import SimWorld  # noqa: PLC0415

    with SimWorld('wx250s', task='lift_block', seed=3) as world:
        objects, start = world.object_poses(), world.ee_pose()
    node = ScriptedPolicyNode(
        context=ros_context,
        parameter_overrides=[
            Parameter('task', value='lift_block'),
            Parameter('robot', value='wx250s'),
            *extra,
        ],
    )
    markers = MarkerArray()
    for name, pose in objects.items():
        markers.markers.append(Marker(text=name, pose=matrix_to_pose(pose)))
    node.on_object_poses(markers)
    node.on_instruction(String(data='pick up the red block'))
    return node, start


def _target(pose: np.ndarray, hold: bool) -> EndEffectorTarget:
    return EndEffectorTarget(pose=matrix_to_pose(pose), gripper=1.0, hold=hold)


@pytest.fixture
def expert(ros_context):
    """The expert three policy ticks into its plan, the limiter (moving) still at the start pose;
    yields (node, start)."""
    node, start = _node(ros_context)
    try:
        node.on_ee_target(_target(start, hold=False))
        for _ in range(3):
            node.on_policy_timer()
        yield node, start
    finally:
        node.destroy_node()


def test_the_expert_replans_when_the_limiter_settles_away_from_its_plan(expert):
    node, start = expert
    planned = node._target.copy()
    assert np.linalg.norm(planned[:3, 3] - start[:3, 3]) > 0.02, 'the plan should move'
    # the limiter settled where it was three ticks ago: the actions since were dropped
    node.on_ee_target(_target(start, hold=True))
    node.on_policy_timer()
    assert node._replans == 1
    assert node.expert.phase == 'approach'
    # the new plan starts from the commanded pose: one step from it, not from the old plan
    assert np.linalg.norm(node._target[:3, 3] - start[:3, 3]) <= 0.05 * np.sqrt(3) + 1e-9


def test_the_expert_keeps_its_plan_while_the_limiter_follows_it(expert):
    node, start = expert
    # moving (not settled), even far behind the plan: the limiter is still catching up
    node.on_ee_target(_target(start, hold=False))
    node.on_policy_timer()
    # settled on the plan itself: nothing was dropped
    node.on_ee_target(_target(node._target, hold=True))
    node.on_policy_timer()
    assert node._replans == 0


def _stamped(objects: dict[str, np.ndarray], seconds: float, shift: float) -> MarkerArray:
    markers = MarkerArray()
    for name, pose in objects.items():
        moved = pose.copy()
        moved[0, 3] += shift
        marker = Marker(text=name, pose=matrix_to_pose(moved))
        marker.header.stamp = StampMsg(sec=int(seconds), nanosec=round(seconds % 1 * 1e9))
        markers.markers.append(marker)
    return markers


def test_the_expert_plans_on_the_newest_object_poses_stamped_before_its_tick(ros_context):
    """The simulator publishes object poses at the instant of a policy tick too, and whether
    those or the previous ones reached the expert first was a race (plans 0.4 mm apart, run to
    run); poses stamped before the tick have arrived in every run."""
    node, start = _node(ros_context)
    try:
        node.on_ee_target(_target(start, hold=False))
        objects = dict(node._objects)
        clock = node.get_clock()
        clock._set_ros_time_is_active(True)  # simulated time, as under use_sim_time
        clock.set_ros_time_override(Time(seconds=1.2, clock_type=ClockType.ROS_TIME))
        node.on_object_poses(_stamped(objects, 1.1, 0.01))
        node.on_object_poses(_stamped(objects, 1.2, 0.02))  # the tick's own poses
        name = next(iter(objects))
        assert np.isclose(node._objects[name][0, 3], objects[name][0, 3] + 0.01)
        node.on_policy_timer()
        assert node._count == 1, 'the tick was planned'
        clock.set_ros_time_override(Time(seconds=1.4, clock_type=ClockType.ROS_TIME))
        assert np.isclose(node._objects[name][0, 3], objects[name][0, 3] + 0.02)
    finally:
        node.destroy_node()


def _sim_clock(node, seconds: float) -> None:
    clock = node.get_clock()
    clock._set_ros_time_is_active(True)  # simulated time, as under use_sim_time
    clock.set_ros_time_override(Time(seconds=seconds, clock_type=ClockType.ROS_TIME))


def test_planned_on_the_measured_pose_the_labels_follow_the_arm_not_the_target(ros_context):
    """plan_from 'measured' (learn's expert): each label is planned on the forward kinematics
    of the newest joint states stamped before the tick, which is what the camera shows, not on
    the commanded target the arm lags."""
    from openvla_ros.control.kinematics import get_kinematics  # noqa: PLC0415
    from openvla_ros.sim.expert import ScriptedExpert  # noqa: PLC0415

    node, start = _node(ros_context, Parameter('plan_from', value='measured'))
    labels = []
    node._label_pub = SimpleNamespace(publish=labels.append)
    try:
        kin = get_kinematics('wx250s')
        objects = dict(node._objects)
        ahead = start.copy()
        ahead[0, 3] += 0.03  # the limiter's target, 3 cm ahead of the arm
        node.on_ee_target(_target(ahead, hold=False))
        _sim_clock(node, 1.2)
        node.on_policy_timer()
        assert labels == [], 'no joint states yet: it waits'
        q_then = kin.ik(start, np.zeros(6)).q
        q_tick = kin.ik(ahead, q_then).q  # stamped at the tick itself: not used by this tick
        names = list(kin.joint_names) + ['left_finger']
        node.on_joint_states(_joints(names, [*q_then, 0.03], 1.1))
        node.on_joint_states(_joints(names, [*q_tick, 0.03], 1.2))
        node.on_policy_timer()
        expert = ScriptedExpert('lift_block', gain=0.4, settle=(0.006, 0.05))
        expert.reset(objects, kin.fk(q_then))
        label = np.array(labels[0].actions)
        np.testing.assert_allclose(label, expert.next_chunk(objects, kin.fk(q_then))[0])
        from_target = ScriptedExpert('lift_block', gain=0.4, settle=(0.006, 0.05))
        from_target.reset(objects, ahead)
        assert not np.allclose(label, from_target.next_chunk(objects, ahead)[0], atol=1e-3)
    finally:
        node.destroy_node()


def _joints(names: list[str], positions: list[float], seconds: float) -> JointState:
    msg = JointState(name=names, position=[float(p) for p in positions])
    msg.header.stamp = StampMsg(sec=int(seconds), nanosec=round(seconds % 1 * 1e9))
    return msg


def test_a_deliberate_miss_labels_the_approach_but_not_the_descent_beside_the_block(ros_context):
    """miss_probability 1: the approach to the hover pose is the usual one and labelled; the
    descent then goes beside the block on purpose. Its actions go out (the arm must miss), its
    labels do not (a learner must not imitate them)."""
    from openvla_ros.control.kinematics import get_kinematics  # noqa: PLC0415

    node, start = _node(
        ros_context,
        Parameter('plan_from', value='measured'),
        Parameter('miss_probability', value=1.0),
    )
    labels, chunks, status = [], [], []
    node._label_pub = SimpleNamespace(publish=labels.append)
    node._chunk_pub = SimpleNamespace(publish=chunks.append)
    node._status_pub = SimpleNamespace(publish=status.append)
    try:
        kin = get_kinematics('wx250s')
        names = list(kin.joint_names) + ['left_finger']
        node.on_ee_target(_target(start, hold=False))
        q = kin.ik(start, np.zeros(6)).q
        node.on_joint_states(_joints(names, [*q, 0.03], 1.1))
        _sim_clock(node, 1.2)
        for _ in range(2):
            node.on_policy_timer()
        assert len(chunks) == 2 and len(labels) == 2  # approaching: labelled
        assert node.expert.phase == 'approach' and not node.expert.deliberate
        objects = dict(node._objects)
        hover = node.expert._grasp(objects, start)
        hover[2, 3] += node.expert.hover
        q_hover = kin.ik(hover, q).q  # the arm arrives above the block
        node.on_joint_states(_joints(names, [*q_hover, 0.03], 1.3))
        _sim_clock(node, 1.4)
        node.on_policy_timer()
        assert node.expert.phase == 'descend' and node.expert.deliberate
        assert len(chunks) == 3 and len(labels) == 2  # acted, not labelled
        assert status[-1].message.endswith('(missing on purpose)')
        aim = node.expert._grasp_pose[:3, 3]
        block = objects['red_block'][:3, 3]
        assert 0.025 <= np.hypot(*(aim - block)[:2]) <= 0.04  # the default miss_distance
    finally:
        node.destroy_node()


def test_misses_need_the_measured_pose_and_a_sane_distance(ros_context):
    from openvla_ros.nodes.scripted_policy_node import ScriptedPolicyNode  # noqa: PLC0415

    for extra, match in (
        ([Parameter('miss_probability', value=0.5)], "plan_from 'measured'"),
        (
            [
                Parameter('plan_from', value='measured'),
                Parameter('miss_distance', value=[0.05, 0.02]),
            ],
            'miss_distance',
        ),
    ):
        with pytest.raises(ValueError, match=match):
            ScriptedPolicyNode(
                context=ros_context,
                parameter_overrides=[Parameter('task', value='lift_block'), *extra],
            )
