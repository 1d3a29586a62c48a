"""Franka FR3 / Panda on a table: OpenVLA at 5 Hz.

Usage (parameters from config/franka_tabletop.yaml; `--show-args` lists the arguments):

    ros2 launch openvla_ros franka_tabletop.launch.py
    ros2 launch openvla_ros franka_tabletop.launch.py sim:=true use_rviz:=true
    ros2 launch openvla_ros franka_tabletop.launch.py quantize:=4bit model:=/path/to/ckpt
    ros2 launch openvla_ros franka_tabletop.launch.py sim:=true policy:=scripted task:=lift_block

What starts is decided by openvla_ros.bringup.launch_description.plan_launch from the node graph
(openvla_ros/bringup/graph.py, shared with the in-process runner). robot_state_publisher
(sim:=true) and rviz2 are optional: without robot_state_publisher the launch warns once (no arm
model in rviz) and runs; use_rviz:=true without rviz2 stops it with a one-line error before any
node starts.
"""

from openvla_ros.bringup.launch_description import generate_profile_launch_description


def generate_launch_description():
    return generate_profile_launch_description('franka_tabletop')
