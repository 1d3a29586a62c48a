"""Shared parts of the launch_testing tests, thin wrappers over openvla_ros.bringup.launch_checks
(which is unit-tested here against the in-process runner, test_launch_checks.py): each profile's
test starts
its launch file with `sim:=true policy:=scripted task:=lift_block`, waits for the pipeline's topics
with the QoS their consumers use (the camera best effort), sends the instruction, checks that the
block rises, and after the launch is stopped (SIGINT, as Ctrl-C) checks every exit code.
Imported only where launch, launch_ros and launch_testing exist (a ROS 2 machine)."""

from __future__ import annotations

from functools import partial
import os
import unittest

from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_probe import InstructionSender, watch_lift, watch_topics
import launch_testing.actions
import launch_testing.asserts
from rclpy.node import Node

import launch
from openvla_ros.bringup.graph import GraphArgs
from openvla_ros.bringup.launch_checks import (
    EXIT_CODES_AFTER_SIGINT,
    lift_check_for,
    topics_to_wait_for,
)
from openvla_ros.bringup.profiles import share_dir
from openvla_ros.nodes._common import spun_node, wait_until

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')  # Humble's spelling
os.environ.setdefault('MUJOCO_GL', 'egl')

LAUNCH_ARGUMENTS = {'sim': 'true', 'policy': 'scripted', 'task': 'lift_block', 'use_rviz': 'false'}
TOPICS_TIMEOUT = 120.0  # [s] first frames: the simulator loads MuJoCo and renders
PIPELINE_TIMEOUT = 60.0  # [s] chunks and targets after the instruction
LIFT_TIMEOUT = 180.0  # [s] the expert's episode is 60 policy steps at 5 Hz; slow machines


def graph_args(profile: str) -> GraphArgs:
    return GraphArgs.from_strings({'profile': profile, **LAUNCH_ARGUMENTS})


def launch_description(profile: str) -> launch.LaunchDescription:
    """The profile's installed launch file in simulation with the scripted expert, then
    ReadyToTest."""
    stack = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(share_dir() / 'launch' / f'{profile}.launch.py')),
        launch_arguments=LAUNCH_ARGUMENTS.items(),
    )
    return launch.LaunchDescription([stack, launch_testing.actions.ReadyToTest()])


def lift_test(profile: str) -> type:
    """A TestCase: the topics arrive, then the block rises after the instruction."""
    args = graph_args(profile)

    class TestLiftBlock(unittest.TestCase):
        def test_the_block_rises_after_the_instruction(self):
            with spun_node(partial(Node, 'launch_test_probe')) as node:
                watch = watch_topics(node, topics_to_wait_for(args))
                check = lift_check_for(args)
                rise = watch_lift(node, check)
                self.assertTrue(
                    wait_until(lambda: not watch.missing(after_instruction=False), TOPICS_TIMEOUT),
                    watch.report(after_instruction=False),
                )
                sender = InstructionSender(node, check.instruction)
                sender.start(rise)
                self.assertTrue(
                    wait_until(lambda: not watch.missing(), PIPELINE_TIMEOUT), watch.report()
                )
                self.assertTrue(wait_until(rise.rose, LIFT_TIMEOUT), rise.report())
                sender.stop()

    return TestLiftBlock


@launch_testing.post_shutdown_test()
class TestExitCodes(unittest.TestCase):
    def test_every_process_exits_cleanly_after_sigint(self, proc_info):
        launch_testing.asserts.assertExitCodes(
            proc_info, allowable_exit_codes=list(EXIT_CODES_AFTER_SIGINT)
        )
