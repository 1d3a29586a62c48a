"""run_node's shutdown test: an exception from a message taken while SIGINT shuts the context down
is the shutdown (exit 0), even when rclpy.ok() is still true at the instant of the exception (seen
in the launched franka_droid graph: scripted_policy exited 1 after Ctrl-C)."""

from __future__ import annotations

import threading
import time

import rclpy

from openvla_ros.nodes._common import shutting_down


def test_a_shutdown_still_in_progress_counts_as_shutting_down():
    context = rclpy.Context()
    rclpy.init(context=context)
    timer = threading.Timer(0.2, lambda: rclpy.try_shutdown(context=context))
    timer.start()
    try:
        assert rclpy.ok(context=context)
        assert shutting_down(context, wait=5.0)
    finally:
        timer.join()
        rclpy.try_shutdown(context=context)


def test_a_context_that_stays_up_is_not_shutting_down():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        t0 = time.monotonic()
        assert not shutting_down(context, wait=0.2)
        assert time.monotonic() - t0 >= 0.2
    finally:
        rclpy.try_shutdown(context=context)
