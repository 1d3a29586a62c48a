"""openvla_ros.bringup.launch_checks, the logic the launch_testing tests stand on, run here with
real rclpy against the in-process runner (the same graph the launch files start): the topics arrive
with the chosen QoS, a reliable waiter never gets the best-effort camera, and the block rises
after the instruction."""

from __future__ import annotations

from types import SimpleNamespace

from launch_probe import InstructionSender, to_qos, watch_lift, watch_topics
import pytest
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image

from openvla_ros.bringup.graph import GraphArgs
from openvla_ros.bringup.launch_checks import (
    lift_check_for,
    LiftCheck,
    object_heights,
    ObjectRise,
    RELIABLE,
    SENSOR_DATA,
    TopicCheck,
    TopicQos,
    topics_to_wait_for,
    TopicWatch,
)
from openvla_ros.bringup.profiles import PROFILES
from openvla_ros.harness.runner import GraphRunner
from openvla_ros.nodes._common import wait_until

pytest.importorskip(
    'interbotix_xs_msgs.msg', reason='interbotix_xs_msgs fixture not built (scripts/setup_venv.sh)'
)


def sim_args(profile: str = 'widowx_bridge') -> GraphArgs:
    return GraphArgs(profile=profile, sim=True, policy='scripted', task='lift_block')


# ---------------------------------------------------------------- plain parts


@pytest.mark.parametrize('profile', PROFILES)
def test_the_camera_is_waited_for_best_effort_and_the_rest_reliable(profile):
    checks = {c.topic: c for c in topics_to_wait_for(sim_args(profile))}
    assert checks['/camera/image_raw'].qos == SENSOR_DATA
    joint_states = '/wx250s/joint_states' if profile == 'widowx_bridge' else '/fr3/joint_states'
    assert checks[joint_states].qos == RELIABLE
    for topic in ('/openvla/action_chunk', '/openvla/ee_target', '/openvla/safe_ee_target'):
        assert checks[topic].after_instruction and checks[topic].qos == RELIABLE
    assert not checks['/openvla/sim/object_poses'].after_instruction


def test_the_checked_camera_follows_the_camera_topic_argument():
    args = GraphArgs(profile='widowx_bridge', sim=True, policy='scripted', camera_topic='/cam/rgb')
    assert topics_to_wait_for(args)[0].topic == '/cam/rgb'


def test_checks_without_the_simulator_are_refused():
    with pytest.raises(ValueError, match='sim:=true'):
        topics_to_wait_for(GraphArgs(profile='widowx_bridge'))


def test_a_qos_names_its_policies_and_knows_what_matches():
    with pytest.raises(ValueError, match='reliability'):
        TopicQos('sometimes')
    assert SENSOR_DATA.receives_from('reliable') and SENSOR_DATA.receives_from('best_effort')
    assert RELIABLE.receives_from('reliable') and not RELIABLE.receives_from('best_effort')


def test_the_watch_reports_what_is_missing_per_phase():
    checks = topics_to_wait_for(sim_args())
    watch = TopicWatch(checks)
    for c in checks:
        if not c.after_instruction:
            watch.record(c.topic)
    assert watch.missing(after_instruction=False) == []
    assert '/openvla/action_chunk (openvla_ros/msg/ActionChunk, reliable)' in watch.report()


def test_the_lift_check_is_the_tasks_object_and_height():
    check = lift_check_for(sim_args('franka_tabletop'))
    assert check == LiftCheck('red_block', 0.05, 'pick up the red block')
    with pytest.raises(ValueError, match='lift task'):
        lift_check_for(GraphArgs(profile='widowx_bridge', sim=True, task='carrot_on_plate'))


def markers(**heights: float) -> SimpleNamespace:
    pose = lambda z: SimpleNamespace(position=SimpleNamespace(z=z))  # noqa: E731
    return SimpleNamespace(
        markers=[
            SimpleNamespace(ns='sim_objects', text=name, pose=pose(z))
            for name, z in heights.items()
        ]
    )


def test_a_rise_counts_only_from_the_height_at_the_instruction():
    rise = ObjectRise(LiftCheck('red_block', 0.05, 'pick up the red block'))
    with pytest.raises(RuntimeError, match='no pose of red_block'):
        rise.instruction_sent()
    rise.on_heights(object_heights(markers(red_block=0.20, green_block=0.0)))  # before: ignored
    rise.on_heights(object_heights(markers(red_block=0.0126)))
    rise.instruction_sent()
    rise.on_heights(object_heights(markers(red_block=0.05)))
    assert not rise.rose() and rise.rise() == pytest.approx(0.0374)
    rise.on_heights(object_heights(markers(green_block=0.5)))  # another object: no effect
    rise.on_heights(object_heights(markers(red_block=0.0627)))
    rise.on_heights(object_heights(markers(red_block=0.0127)))  # dropped again: it did rise
    assert rise.rose()
    assert 'red_block rose 0.050 m' in rise.report()


# ---------------------------------------------------------------- with real rclpy


@pytest.fixture
def lift_graph():
    """widowx_bridge sim:=true policy:=scripted task:=lift_block in this process; a small camera
    image keeps two cores free for the physics."""
    runner = GraphRunner(
        sim_args(),
        overrides={'sim': {'camera_rate': 10.0, 'image_width': 320, 'image_height': 240}},
    )
    runner.start()
    yield runner
    runner.stop()


@pytest.mark.slow
def test_the_waited_topics_arrive_and_the_block_rises_after_the_instruction(lift_graph):
    args = sim_args()
    node = lift_graph.add_node(Node, 'launch_check_probe')
    watch = watch_topics(node, topics_to_wait_for(args))
    check = lift_check_for(args)
    rise = watch_lift(node, check)
    assert wait_until(lambda: not watch.missing(after_instruction=False), 60), watch.report(
        after_instruction=False
    )
    assert watch.missing() != [], 'chunks flowed before any instruction'
    sender = InstructionSender(node, check.instruction)
    sender.start(rise)
    assert wait_until(lambda: not watch.missing(), 60), watch.report()
    assert wait_until(rise.rose, 120), rise.report()
    sender.stop()


@pytest.mark.slow
def test_a_reliable_waiter_never_receives_the_best_effort_camera(lift_graph):
    node = lift_graph.add_node(Node, 'qos_probe')
    camera = topics_to_wait_for(sim_args())[0]
    assert camera.qos == SENSOR_DATA
    as_checked = watch_topics(node, [camera])
    reliable = TopicWatch([TopicCheck(camera.topic, camera.msg_type, RELIABLE)])
    node.create_subscription(
        Image, camera.topic, lambda _m: reliable.record(camera.topic), to_qos(RELIABLE)
    )
    assert wait_until(lambda: as_checked.count(camera.topic) >= 10, 60), as_checked.report()
    # the reliable subscription was made at the same time and saw the same publisher
    assert reliable.count(camera.topic) == 0
    offered = [p.qos_profile.reliability for p in node.get_publishers_info_by_topic(camera.topic)]
    assert offered == [ReliabilityPolicy.BEST_EFFORT]


@pytest.mark.slow
def test_every_waited_topics_publishers_offer_what_the_check_subscribes_with(lift_graph):
    node = lift_graph.add_node(Node, 'qos_probe')
    args = sim_args()
    watch = watch_topics(node, topics_to_wait_for(args))
    sender = InstructionSender(node, lift_check_for(args).instruction)
    sender.start()
    assert wait_until(lambda: not watch.missing(), 90), watch.report()
    for check in watch.checks:
        publishers = node.get_publishers_info_by_topic(check.topic)
        names = {p.node_name for p in publishers}
        assert publishers, check.topic
        for p in publishers:
            offered = (
                'reliable'
                if p.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                else 'best_effort'
            )
            assert check.qos.receives_from(offered), (check.topic, names, offered)
    sender.stop()
