"""MuJoCo simulator core: arms, table, objects, rendered camera, tasks and a scripted expert.

Pure Python on MuJoCo, no rclpy: the ROS sim node is a thin shell over ``SimWorld``. The arm
models are generated here from the published kinematics (WidowX 250 6DOF product of
exponentials, Franka modified DH), so the simulated TCP agrees with
``openvla_ros.control.kinematics``. Rendering uses ``MUJOCO_GL=egl`` unless the environment
says otherwise (set before mujoco is imported).
"""

from __future__ import annotations

from openvla_ros.sim.errors import SimError
from openvla_ros.sim.expert import apply_action, ScriptedExpert
from openvla_ros.sim.scene import (
    build_scene_xml,
    CameraSpec,
    object_spec,
    OBJECTS,
    ObjectSpec,
    robot_spec,
    ROBOTS,
    RobotSpec,
)
from openvla_ros.sim.tasks import get_task, Task, task_names
from openvla_ros.sim.world import CameraIntrinsics, JointStateData, SimWorld

__all__ = [
    'OBJECTS',
    'ROBOTS',
    'CameraIntrinsics',
    'CameraSpec',
    'JointStateData',
    'ObjectSpec',
    'RobotSpec',
    'ScriptedExpert',
    'SimError',
    'SimWorld',
    'Task',
    'apply_action',
    'build_scene_xml',
    'get_task',
    'object_spec',
    'robot_spec',
    'task_names',
]
