"""The scripted expert is open-loop on its own integrated target: when the safety chain drops its
actions (a HOLD empties the limiter's queue, a refusal re-anchors it), the limiter settles
elsewhere, and the expert must re-plan from there instead of closing the gripper in the air."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.parameter import Parameter
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from openvla_ros.msg import EndEffectorTarget
from openvla_ros.nodes._conversions import matrix_to_pose


def _node(ros_context):
    from openvla_ros.nodes.scripted_policy_node import ScriptedPolicyNode  # noqa: PLC0415
    from openvla_ros.sim.world import SimWorld  # noqa: PLC0415

    with SimWorld('wx250s', task='lift_block', seed=3) as world:
        objects, start = world.object_poses(), world.ee_pose()
    node = ScriptedPolicyNode(
        context=ros_context,
        parameter_overrides=[
            Parameter('task', value='lift_block'),
            Parameter('robot', value='wx250s'),
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
