"""Simulator node: a MuJoCo arm (``SimWorld``) behind the real drivers' interfaces, plus a camera.

Serves, per ``interface`` (the arm adapter's names):

- ``xs_sdk``: ``/<robot_name>/commands/joint_group`` (interbotix_xs_msgs/JointGroupCommand; group
  'arm' = joint targets) and ``/<robot_name>/commands/joint_single`` (JointSingleCommand; 'gripper'
  in pwm: > 0 opens, < 0 closes, 0 stops; an arm joint name = that joint's target);
- ``ros2_control``: ``/<robot_name>/arm_controller/joint_trajectory`` and
  ``/<robot_name>/gripper_controller/joint_trajectory`` ('left_finger' position [m]);
- ``franka_jtc``: ``/<robot>_arm_controller/joint_trajectory``;
- ``franka_impedance``: PoseStamped on the equilibrium pose topic, solved by IK inside the sim
  (an ideal impedance controller at rest);
- franka_* also: franka_gripper actions ``move``, ``grasp``, ``homing`` (franka_msgs) and
  ``gripper_action`` (control_msgs/GripperCommand), answered at once (the fingers then move).

Publishes ``joint_states`` (arm + fingers) on ``/<robot_name>/joint_states``, the camera as
sensor_msgs/Image rgb8 (sensor-data QoS) with its CameraInfo, and the true object poses as a
visualization_msgs/MarkerArray on ``/openvla/sim/object_poses`` (one CUBE per object: ``ns`` =
'sim_objects', ``text`` = the object name, pose in the base frame) for the scripted expert.
Physics advances ``1 / update_rate`` simulated seconds per timer tick; the camera renders on
its own thread.
"""

from __future__ import annotations

from collections.abc import Callable
import math
import threading
import time
from typing import Any, TypeVar

from geometry_msgs.msg import PoseStamped
import numpy as np
from rclpy.action import ActionServer
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from openvla_ros.adapters.topics import (
    arm_trajectory_topic,
    gripper_trajectory_topic,
    xs_sdk_topics,
)
from openvla_ros.control.kinematics import get_kinematics, KNOWN_ARMS
from openvla_ros.nodes._common import declare_params, Param, run_node
from openvla_ros.nodes._conversions import matrix_to_pose, pose_to_matrix
from openvla_ros.nodes.arm_adapter_node import DRIVER_TOPIC_PARAMS, import_vendor

SIM_INTERFACES = ('franka_impedance', 'franka_jtc', 'ros2_control', 'xs_sdk')
_DEFAULT_INTERFACE = {'wx250s': 'xs_sdk', 'panda': 'franka_impedance', 'fr3': 'franka_impedance'}
_BASE_FRAME = {'wx250s': 'wx250s/base_link', 'panda': 'panda_link0', 'fr3': 'fr3_link0'}

PARAMS = (
    Param('robot', 'wx250s', 'Simulated arm.', choices=KNOWN_ARMS),
    Param(
        'robot_name',
        '',
        'Namespace of the Interbotix / ros2_control topics and of joint_states; "" = robot.',
    ),
    Param('interface', '', 'Driver interface to serve; "" = xs_sdk (wx250s) or franka_impedance.'),
    Param('task', '', 'Task (objects and their layout), see openvla_ros.sim.tasks; "" = none.'),
    Param('seed', 0, 'Seed of the first episode (object placement).', low=0, high=2**31 - 1),
    Param(
        'physics_rate', 500.0, '[Hz] Physics rate (1 / MuJoCo timestep).', low=100.0, high=5000.0
    ),
    Param(
        'update_rate',
        50.0,
        '[Hz] Physics timer: each tick advances 1 / update_rate s.',
        low=1.0,
        high=1000.0,
    ),
    Param(
        'camera_rate',
        10.0,
        '[Hz] Rendered camera rate (30 for the real camera; costs CPU); 0 = no camera.',
        low=0.0,
        high=60.0,
    ),
    Param('joint_states_rate', 50.0, '[Hz] joint_states publish rate.', low=1.0, high=500.0),
    Param(
        'object_poses_rate',
        10.0,
        '[Hz] object poses publish rate; 0 = never.',
        low=0.0,
        high=100.0,
    ),
    Param('image_width', 640, '[px] Camera image width.', low=16, high=1920),
    Param('image_height', 480, '[px] Camera image height.', low=16, high=1080),
    Param(
        'camera_topic',
        '/camera/image_raw',
        'Image topic; CameraInfo goes to camera_info next to it.',
    ),
    Param('joint_states_topic', '', 'joint_states topic; "" = /<robot_name>/joint_states.'),
    Param('base_frame', '', 'frame_id of poses; "" = wx250s/base_link, panda_link0 or fr3_link0.'),
    *DRIVER_TOPIC_PARAMS,
)


T = TypeVar('T')


class SimNode(Node):
    """The simulated robot driver and camera (see the module docstring)."""

    def __init__(self, *, node_name: str = 'sim', **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.params = declare_params(self, PARAMS)
        p = self.params
        self.robot: str = p['robot']
        self.robot_name: str = p['robot_name'] or self.robot
        self.interface: str = p['interface'] or _DEFAULT_INTERFACE[self.robot]
        if self.interface not in SIM_INTERFACES:
            raise ValueError(
                f'the simulator does not serve interface {self.interface!r}; '
                f'use one of {list(SIM_INTERFACES)}'
            )
        self.base_frame: str = p['base_frame'] or _BASE_FRAME[self.robot]
        from openvla_ros.sim.world import SimWorld  # mujoco loads only where a sim runs

        self.world = SimWorld(
            self.robot,
            seed=int(p['seed']),
            task=p['task'] or None,
            image_size=(int(p['image_height']), int(p['image_width'])),
            physics_dt=1.0 / float(p['physics_rate']),
        )
        self.update_dt = self._physics_step(float(p['update_rate']))
        self.kinematics = get_kinematics(self.robot)
        self.gripper_pwm = 0.0
        self._closed = False
        self._timers: list = []
        self._action_servers: list[ActionServer] = []
        ns = f'/{self.robot_name}'
        self.joint_states_pub = self.create_publisher(
            JointState, p['joint_states_topic'] or f'{ns}/joint_states', 10
        )
        self.object_poses_pub = self.create_publisher(MarkerArray, '/openvla/sim/object_poses', 10)
        camera_topic = p['camera_topic']
        self.image_pub = self.create_publisher(Image, camera_topic, qos_profile_sensor_data)
        self.camera_info_pub = self.create_publisher(
            CameraInfo, camera_topic.rsplit('/', 1)[0] + '/camera_info', qos_profile_sensor_data
        )
        self._create_inputs()
        self._timers.append(
            self.create_timer(1.0 / float(p['update_rate']), self.on_physics_timer)
        )
        self._timers.append(
            self.create_timer(1.0 / float(p['joint_states_rate']), self.on_joint_states_timer)
        )
        self._world_lock = threading.Lock()
        self._camera_stop = threading.Event()
        self._camera_thread: threading.Thread | None = None
        if float(p['camera_rate']) > 0.0:
            self._camera_thread = threading.Thread(
                target=self._camera_loop, args=(1.0 / float(p['camera_rate']),),
                name='sim_camera', daemon=True)
            self._camera_thread.start()
        if float(p['object_poses_rate']) > 0.0:
            self._timers.append(
                self.create_timer(1.0 / float(p['object_poses_rate']), self.on_object_poses_timer)
            )

    def _physics_step(self, update_rate: float) -> float:
        """The simulated time per tick, rounded to a whole number of physics steps."""
        n = max(1, int(round(1.0 / (update_rate * self.world.physics_dt))))
        return n * self.world.physics_dt

    def _create_inputs(self) -> None:
        p = self.params
        if self.interface == 'xs_sdk':
            msgs = import_vendor('interbotix_xs_msgs.msg')
            group_topic, single_topic = xs_sdk_topics(self.robot_name)
            self.create_subscription(msgs.JointGroupCommand, group_topic, self.on_joint_group, 10)
            self.create_subscription(
                msgs.JointSingleCommand, single_topic, self.on_joint_single, 10
            )
        elif self.interface == 'ros2_control':
            self.create_subscription(
                JointTrajectory,
                arm_trajectory_topic(
                    'ros2_control', self.robot, self.robot_name, p['arm_trajectory_topic']
                ),
                self.on_arm_trajectory,
                10,
            )
            self.create_subscription(
                JointTrajectory,
                gripper_trajectory_topic(self.robot_name, p['gripper_trajectory_topic']),
                self.on_gripper_trajectory,
                10,
            )
        elif self.interface == 'franka_jtc':
            self.create_subscription(
                JointTrajectory,
                arm_trajectory_topic(
                    'franka_jtc', self.robot, self.robot_name, p['arm_trajectory_topic']
                ),
                self.on_arm_trajectory,
                10,
            )
        else:
            self.create_subscription(
                PoseStamped, p['equilibrium_pose_topic'], self.on_equilibrium_pose, 10
            )
        if self.interface.startswith('franka_'):
            franka = import_vendor('franka_msgs.action')
            control = import_vendor('control_msgs.action')
            gns = p['franka_gripper_namespace'].rstrip('/')
            for action_type, name, callback in (
                (franka.Move, 'move', self.on_move_goal),
                (franka.Grasp, 'grasp', self.on_grasp_goal),
                (franka.Homing, 'homing', self.on_homing_goal),
                (control.GripperCommand, 'gripper_action', self.on_gripper_action_goal),
            ):
                self._action_servers.append(
                    ActionServer(
                        self, action_type, f'{gns}/{name}', self._execute(action_type, callback)
                    )
                )

    # ------------------------------------------------------------------ command callbacks
    def on_joint_group(self, msg) -> None:
        if msg.name != 'arm':
            self.get_logger().warning(
                f'joint_group {msg.name!r} is not simulated (only "arm")',
                throttle_duration_sec=5.0,
            )
            return
        self._set_targets(list(msg.cmd))

    def on_joint_single(self, msg) -> None:
        if msg.name == 'gripper':
            self.gripper_pwm = float(msg.cmd)
            if self.gripper_pwm != 0.0 and math.isfinite(self.gripper_pwm):
                self.world.set_gripper(1.0 if self.gripper_pwm > 0.0 else 0.0)
            else:
                self.world.set_gripper(self.world.gripper_opening())
            return
        if msg.name in self.world.joint_names:
            q = self.world.arm_targets
            q[self.world.joint_names.index(msg.name)] = float(msg.cmd)
            self._set_targets(q)
            return
        self.get_logger().warning(
            f'joint_single {msg.name!r} is not simulated', throttle_duration_sec=5.0
        )

    def on_arm_trajectory(self, msg: JointTrajectory) -> None:
        index = {n: i for i, n in enumerate(msg.joint_names)}
        names = self.world.joint_names
        if any(n not in index for n in names) or not msg.points:
            self.get_logger().warning(
                f'trajectory needs points for all of {list(names)}; got {list(msg.joint_names)}',
                throttle_duration_sec=5.0,
            )
            return
        points = []
        for point in msg.points:
            t = point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
            points.append((t, [point.positions[index[n]] for n in names]))
        try:
            self.world.set_arm_trajectory(points)
        except ValueError as err:
            self.get_logger().warning(f'trajectory refused: {err}', throttle_duration_sec=5.0)

    def on_gripper_trajectory(self, msg: JointTrajectory) -> None:
        if 'left_finger' not in msg.joint_names or not msg.points:
            return
        position = msg.points[-1].positions[list(msg.joint_names).index('left_finger')]
        self.world.set_gripper_width(2.0 * float(position))

    def on_equilibrium_pose(self, msg: PoseStamped) -> None:
        target = pose_to_matrix(msg.pose)
        result = self.kinematics.ik(target, self.world.arm_q())
        if not result.ok:
            self.get_logger().warning(
                f'equilibrium pose unreachable: {result.reason}: {result.message}',
                throttle_duration_sec=5.0,
            )
            return
        self._set_targets(result.q)

    def on_move_goal(self, request) -> None:
        self.world.set_gripper_width(float(request.width))

    def on_grasp_goal(self, request) -> None:
        # Close below the grasp width: the finger servo then squeezes the object.
        self.world.set_gripper_width(max(0.0, float(request.width) - 0.01))

    def on_homing_goal(self, request) -> None:
        del request
        self.world.set_gripper(1.0)

    def on_gripper_action_goal(self, request) -> None:
        self.world.set_gripper_width(2.0 * float(request.command.position))

    def _execute(self, action_type, apply):
        """An execute callback: apply the goal to the world and succeed at once."""

        def execute(goal_handle):
            apply(goal_handle.request)
            goal_handle.succeed()
            result = action_type.Result()
            if hasattr(result, 'success'):
                result.success = True
            else:
                lo = 2.0 * self.world.spec.finger_range[0]
                hi = 2.0 * self.world.spec.finger_range[1]
                result.position = 0.5 * (lo + self.world.gripper_opening() * (hi - lo))
                result.reached_goal = True
            return result

        return execute

    # ------------------------------------------------------------------ timers
    def inspect(self, fn: Callable[[Any], T]) -> T:
        """Runs fn(world) under the physics lock (a consistent state for checks from other threads,
        e.g. a task's success predicate in ``openvla-ros evaluate``)."""
        with self._world_lock:
            return fn(self.world)

    def on_physics_timer(self) -> None:
        with self._world_lock:
            self.world.step(self.update_dt)

    def on_joint_states_timer(self) -> None:
        with self._world_lock:
            state = self.world.joint_state()
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(state.name)
        msg.position = [float(v) for v in state.position]
        msg.velocity = [float(v) for v in state.velocity]
        msg.effort = [float(v) for v in state.effort]
        self.joint_states_pub.publish(msg)

    def _camera_loop(self, period: float) -> None:
        """Renders on this thread only: the GL context belongs to the thread that made it, and
        rendering here keeps physics and joint states on time while a frame is drawn."""
        next_time = time.monotonic()
        try:
            while not self._camera_stop.wait(max(0.0, next_time - time.monotonic())):
                next_time = max(next_time + period, time.monotonic())
                try:
                    self.on_camera_timer()
                except Exception:
                    if self.context.ok():
                        raise
                    break  # Ctrl-C shut the context down mid-frame: that is the shutdown
        finally:
            with self._world_lock:
                self.world.close()  # frees the renderer on the thread that created it

    def on_camera_timer(self) -> None:
        with self._world_lock:
            pixels = self.world.render()
        intrinsics = self.world.camera_info()
        stamp = self.get_clock().now().to_msg()
        image = Image()
        image.header.stamp = stamp
        image.header.frame_id = intrinsics.frame_id
        image.height, image.width = int(pixels.shape[0]), int(pixels.shape[1])
        image.encoding = 'rgb8'
        image.step = image.width * 3
        image.data = np.ascontiguousarray(pixels).tobytes()
        self.image_pub.publish(image)
        info = CameraInfo()
        info.header = image.header
        info.width, info.height = intrinsics.width, intrinsics.height
        info.distortion_model = 'plumb_bob'
        info.d = [0.0] * 5
        info.k = [float(v) for v in intrinsics.k.ravel()]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [
            intrinsics.fx,
            0.0,
            intrinsics.cx,
            0.0,
            0.0,
            intrinsics.fy,
            intrinsics.cy,
            0.0,
            0.0,
            0.0,
            1.0,
            0.0,
        ]
        self.camera_info_pub.publish(info)

    def on_object_poses_timer(self) -> None:
        stamp = self.get_clock().now().to_msg()
        markers = MarkerArray()
        for i, (name, pose) in enumerate(sorted(self.world.object_poses().items())):
            marker = Marker()
            marker.header.stamp = stamp
            marker.header.frame_id = self.base_frame
            marker.ns = 'sim_objects'
            marker.id = i
            marker.type = Marker.CUBE
            marker.action = Marker.ADD
            marker.pose = matrix_to_pose(pose)
            marker.scale.x = marker.scale.y = marker.scale.z = 0.03
            marker.color.r, marker.color.g, marker.color.b, marker.color.a = 0.9, 0.5, 0.1, 0.8
            marker.text = name
            markers.markers.append(marker)
        self.object_poses_pub.publish(markers)

    # ------------------------------------------------------------------ helpers
    def _set_targets(self, q) -> None:
        try:
            self.world.set_arm_targets(np.asarray(q, dtype=float))
        except ValueError as err:
            self.get_logger().warning(f'arm command refused: {err}', throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stops the timers and action servers and closes the world (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for timer in self._timers:
            timer.cancel()
            self.destroy_timer(timer)
        self._timers.clear()
        for server in self._action_servers:
            server.destroy()
        self._action_servers.clear()
        if self._camera_thread is not None:
            self._camera_stop.set()
            self._camera_thread.join(timeout=10.0)  # the thread closes the world
        else:
            self.world.close()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Runs the simulator until Ctrl-C or shutdown."""
    return run_node(SimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
