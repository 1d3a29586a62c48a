"""Franka FR3 / Panda on a table: OpenVLA at 5 Hz.

Usage (parameters from config/franka_tabletop.yaml; `--show-args` lists the arguments):

    ros2 launch openvla_ros franka_tabletop.launch.py
    ros2 launch openvla_ros franka_tabletop.launch.py sim:=true use_rviz:=true
    ros2 launch openvla_ros franka_tabletop.launch.py quantize:=4bit model:=/path/to/ckpt

The node graph is defined once in openvla_ros/graph.py and shared with the in-process runner.
"""
from openvla_ros.launch_description import generate_profile_launch_description


def generate_launch_description():
    return generate_profile_launch_description('franka_tabletop')
