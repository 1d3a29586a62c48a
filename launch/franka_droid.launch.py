"""Franka FR3 / Panda at 15 Hz, for OpenVLA models fine-tuned on DROID.

Usage (parameters from config/franka_droid.yaml; `--show-args` lists the arguments):

    ros2 launch openvla_ros franka_droid.launch.py
    ros2 launch openvla_ros franka_droid.launch.py sim:=true use_rviz:=true
    ros2 launch openvla_ros franka_droid.launch.py quantize:=4bit model:=/path/to/ckpt

The node graph is defined once in openvla_ros/graph.py and shared with the in-process runner.
"""
from openvla_ros.launch_description import generate_profile_launch_description


def generate_launch_description():
    return generate_profile_launch_description('franka_droid')
