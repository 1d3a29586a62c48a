"""launch_testing: `ros2 launch openvla_ros widowx_bridge.launch.py sim:=true policy:=scripted`
brings up
the whole graph and its topics appear. Runs on a ROS 2 machine (`launch_test` or colcon test);
skipped where the ROS 2 launch packages are not installed (they are not on PyPI)."""

from __future__ import annotations

import os
import unittest

import pytest

pytest.importorskip('launch_ros', reason='launch_ros is not installed (not on PyPI)')
pytest.importorskip('launch', reason='ROS 2 launch is not installed (not on PyPI)')
pytest.importorskip('launch_testing', reason='launch_testing is not installed')

from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch_testing_ros import WaitForTopics  # noqa: E402

import launch  # noqa: E402
from openvla_ros.msg import ActionChunk, EndEffectorTarget, SafetyStatus  # noqa: E402
from openvla_ros.profiles import share_dir  # noqa: E402

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')  # Humble's spelling
os.environ.setdefault('MUJOCO_GL', 'egl')


@pytest.mark.launch_test
def generate_test_description():
    launch_file = str(share_dir() / 'launch' / 'widowx_bridge.launch.py')
    stack = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(launch_file),
        launch_arguments={'sim': 'true', 'policy': 'scripted', 'use_rviz': 'false'}.items(),
    )
    return launch.LaunchDescription([stack, launch_testing.actions.ReadyToTest()])


class TestTopicsAppear(unittest.TestCase):
    def test_the_pipeline_topics_carry_messages(self):
        import rclpy  # noqa: PLC0415
        from sensor_msgs.msg import Image, JointState  # noqa: PLC0415
        from std_msgs.msg import String  # noqa: PLC0415

        rclpy.init()
        try:
            node = rclpy.create_node('instruction_sender')
            pub = node.create_publisher(String, '/instruction', 10)
            timer = node.create_timer(
                0.5, lambda: pub.publish(String(data='pick up the red block'))
            )
            topics = [
                ('/camera/image_raw', Image),
                ('/wx250s/joint_states', JointState),
                ('/openvla/ee_target', EndEffectorTarget),
                ('/openvla/safe_ee_target', EndEffectorTarget),
                ('/openvla/safety_status', SafetyStatus),
                ('/openvla/action_chunk', ActionChunk),
            ]
            import threading  # noqa: PLC0415

            spinning = threading.Thread(target=rclpy.spin, args=(node,), daemon=True)
            spinning.start()
            with WaitForTopics(topics, timeout=60.0) as wait:
                self.assertEqual(wait.topics_not_received(), set())
            timer.cancel()
            node.destroy_node()
        finally:
            rclpy.try_shutdown()


@launch_testing.post_shutdown_test()
class TestExitCodes(unittest.TestCase):
    def test_every_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
