"""The safety monitor's camera watchdog follows image_transport and reads only the header stamp:
a compressed-only camera keeps it fed; with raw expected, the same camera is stale."""

from __future__ import annotations

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage

from openvla_ros.bringup.profiles import load_profile
from openvla_ros.nodes.safety_monitor_node import SafetyMonitorNode

BOUNDS = {k: v for k, v in load_profile('widowx_bridge').common.items() if 'orientation' in k
          or 'workspace' in k}


def watchdog_fed(context, transport: str) -> bool:
    params = [Parameter(k, value=[float(x) for x in v]) for k, v in BOUNDS.items()]
    params.append(Parameter('image_transport', value=transport))
    monitor = SafetyMonitorNode(node_name=f'monitor_{transport}', context=context,
                                parameter_overrides=params)
    probe = rclpy.create_node(f'camera_{transport}', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(monitor)
    executor.add_node(probe)
    pub = probe.create_publisher(CompressedImage, 'image/compressed', qos_profile_sensor_data)
    try:
        for _ in range(100):  # 5 s at most
            msg = CompressedImage(format='jpeg', data=bytes(5000))
            msg.header.stamp = probe.get_clock().now().to_msg()
            pub.publish(msg)
            executor.spin_once(timeout_sec=0.05)
            age = monitor.monitor.status(monitor._now()).image_age
            if age == age and age < 1.0:  # not NaN: a stamp was read
                return True
        return False
    finally:
        executor.shutdown()
        monitor.destroy_node()
        probe.destroy_node()


def test_a_compressed_only_camera_feeds_the_watchdog_when_the_transport_says_so(ros_context):
    assert watchdog_fed(ros_context, 'compressed')


def test_with_raw_expected_a_compressed_only_camera_leaves_the_watchdog_stale(ros_context):
    assert not watchdog_fed(ros_context, 'raw')
