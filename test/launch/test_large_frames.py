"""Camera frames between processes (issue 19, launched graph): the simulator's 640x480 rgb8 frames
(0.9 MB, best effort) must reach a subscriber in another process. With Fast DDS's default 512 KiB
shared-memory segment most were lost whole, and the safety monitor held for a stale camera; the
launch and the CPU benchmark give the frame publisher openvla_ros.bringup.dds_transport's
profile."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import wait_for
from sensor_msgs.msg import Image

from openvla_ros.bringup.dds_transport import large_frame_env, profile_xml, SEGMENT_BYTES
from openvla_ros.bringup.graph import build_graph, GraphArgs
from openvla_ros.nodes._common import spun_node

FRAMES = 40
PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('frame_publisher')
    pub = node.create_publisher(Image, '/test_frames', qos_profile_sensor_data)
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the subscriber's side of the match
    data = np.zeros((480, 640, 3), np.uint8).tobytes()
    for k in range(int(sys.argv[1])):
        msg = Image(height=480, width=640, encoding='rgb8', step=1920, data=data)
        msg.header.frame_id = str(k)
        pub.publish(msg)
        time.sleep(0.1)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()
    """
)


def test_the_profile_is_fast_dds_xml_with_a_segment_larger_than_a_frame():
    root = ET.fromstring(profile_xml())
    ns = {'f': 'http://www.eprosima.com'}
    segment = int(root.find('.//f:transport_descriptor/f:segment_size', ns).text)
    assert segment == SEGMENT_BYTES > 4 * 640 * 480 * 3
    assert root.find('.//f:participant', ns).get('is_default_profile') == 'true'


def test_the_users_dds_configuration_and_other_rmws_are_left_alone():
    assert large_frame_env({'FASTDDS_DEFAULT_PROFILES_FILE': '/mine.xml'}) == {}
    assert large_frame_env({'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml'}) == {}
    assert large_frame_env({'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}) == {}
    kilted = large_frame_env({})
    assert list(kilted) == ['FASTDDS_DEFAULT_PROFILES_FILE']
    with open(kilted['FASTDDS_DEFAULT_PROFILES_FILE']) as f:
        assert f.read() == profile_xml()
    humble = large_frame_env({'ROS_DISTRO': 'humble', 'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'})
    assert set(humble) == {'FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'}


@pytest.mark.parametrize('profile', ['widowx_bridge', 'franka_tabletop', 'franka_droid'])
def test_only_the_simulator_publishes_large_frames(profile):
    specs = build_graph(GraphArgs(profile=profile, sim=True, policy='scripted', task='lift_block'))
    assert [s.name for s in specs if s.large_messages] == ['sim']


def test_640x480_frames_reach_another_process_with_the_publishers_profile():
    if os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') not in (
        'rmw_fastrtps_cpp',
        'rmw_fastrtps_dynamic_cpp',
    ):
        pytest.skip('the profile is for Fast DDS')
    env = {k: v for k, v in os.environ.items() if 'PROFILES_FILE' not in k}
    got: list[str] = []

    def frame_probe(context: rclpy.Context) -> Node:
        node = rclpy.create_node('frame_probe', context=context)
        node.create_subscription(
            Image, '/test_frames', lambda m: got.append(m.header.frame_id), qos_profile_sensor_data
        )
        return node

    with spun_node(frame_probe):
        publisher = subprocess.Popen(
            [sys.executable, '-c', PUBLISHER, str(FRAMES)],
            env={**env, **large_frame_env(env)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            out = publisher.communicate(timeout=120)[0]
            assert publisher.returncode == 0, out[-2000:]
            wait_for(
                lambda: len(got) >= FRAMES * 0.9,
                10,
                f'90 % of the {FRAMES} frames in the subscriber',
            )
        finally:
            if publisher.poll() is None:
                publisher.kill()
