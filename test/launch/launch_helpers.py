"""Shared parts of the launch_testing tests: each profile's test starts its launch file with
`sim:=true policy:=scripted`, waits for the pipeline's topics, then checks the exit codes.
Imported only where launch, launch_ros and launch_testing exist (a ROS 2 machine)."""

from __future__ import annotations

import os
import threading
import unittest

from launch.launch_description_sources import PythonLaunchDescriptionSource
import launch_testing.actions
import launch_testing.asserts
from launch_testing_ros import WaitForTopics

import launch
from openvla_ros.msg import ActionChunk, EndEffectorTarget, SafetyStatus
from openvla_ros.profiles import share_dir

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')  # Humble's spelling
os.environ.setdefault('MUJOCO_GL', 'egl')


def launch_description(profile: str) -> launch.LaunchDescription:
    """The profile's launch file in simulation with the scripted expert, then ReadyToTest."""
    stack = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(share_dir() / 'launch' / f'{profile}.launch.py')),
        launch_arguments={'sim': 'true', 'policy': 'scripted', 'use_rviz': 'false'}.items(),
    )
    return launch.LaunchDescription([stack, launch_testing.actions.ReadyToTest()])


def topics_test(joint_states: str, instruction: str = 'pick up the red block') -> type:
    """A TestCase that sends the instruction and waits until every pipeline topic carries data."""

    class TestTopicsAppear(unittest.TestCase):
        def test_the_pipeline_topics_carry_messages(self):
            import rclpy  # noqa: PLC0415
            from sensor_msgs.msg import Image, JointState  # noqa: PLC0415
            from std_msgs.msg import String  # noqa: PLC0415

            rclpy.init()
            try:
                node = rclpy.create_node('instruction_sender')
                pub = node.create_publisher(String, '/instruction', 10)
                node.create_timer(0.5, lambda: pub.publish(String(data=instruction)))
                threading.Thread(target=rclpy.spin, args=(node,), daemon=True).start()
                topics = [
                    ('/camera/image_raw', Image),
                    (joint_states, JointState),
                    ('/openvla/ee_target', EndEffectorTarget),
                    ('/openvla/safe_ee_target', EndEffectorTarget),
                    ('/openvla/safety_status', SafetyStatus),
                    ('/openvla/action_chunk', ActionChunk),
                ]
                with WaitForTopics(topics, timeout=60.0) as wait:
                    self.assertEqual(wait.topics_not_received(), set())
            finally:
                rclpy.try_shutdown()

    return TestTopicsAppear


@launch_testing.post_shutdown_test()
class TestExitCodes(unittest.TestCase):
    def test_every_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
