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
The simulator owns the clock: it publishes ``/clock`` (rosgraph_msgs/Clock) and stamps
everything with simulated time, and the rest of the graph runs with ``use_sim_time`` (set by
``openvla_ros.bringup.graph`` for ``sim:=true``). One thread (``sim_loop``) advances physics from
event to event (joint states, camera frames, object poses, control ticks, at their configured
rates in
simulated time) and renders each frame of its instant. With ``lockstep`` the clock stops at each
control tick until the arm command of that tick arrives (or ``lockstep_timeout`` of wall time
passes; then it runs free until commands return), and it never runs faster than
``max_real_time_factor``: a loaded machine runs the world slower, not differently. Gripper
commands (topics and actions) take effect at a control tick too: with the next arm command.
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
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from openvla_ros.adapters.interfaces import DEFAULT_INTERFACE, SIM_INTERFACES
from openvla_ros.adapters.topics import (
    arm_trajectory_topic,
    gripper_trajectory_topic,
    xs_sdk_topics,
)
from openvla_ros.control.kinematics import get_kinematics, KNOWN_ARMS
from openvla_ros.msgio.topics import (
    CAMERA_IMAGE,
    camera_info_topic,
    CLOCK,
    OBJECT_POSES,
    robot_joint_states,
)
from openvla_ros.nodes._common import declare_params, Param, run_node
from openvla_ros.nodes._conversions import InvalidPoseError, matrix_to_pose, pose_to_matrix
from openvla_ros.nodes.arm_adapter_node import DRIVER_TOPIC_PARAMS, import_vendor

_BASE_FRAME = {'wx250s': 'wx250s/base_link', 'panda': 'panda_link0', 'fr3': 'fr3_link0'}

PARAMS = (
    Param('robot', 'wx250s', 'Simulated arm.', choices=KNOWN_ARMS),
    Param(
        'robot_name',
        '',
        'Namespace of the Interbotix / ros2_control topics and of joint_states; "" = robot.',
    ),
    Param(
        'interface',
        '',
        f'Driver interface to serve: {", ".join(SIM_INTERFACES)}; "" = the robot default ('
        + ', '.join(f'{robot}: {name}' for robot, name in DEFAULT_INTERFACE.items())
        + ').',
    ),
    Param('task', '', 'Task (objects and their layout), see openvla_ros.sim.tasks; "" = none.'),
    Param('seed', 0, 'Seed of the first episode (object placement).', low=0, high=2**31 - 1),
    Param(
        'physics_rate', 500.0, '[Hz] Physics rate (1 / MuJoCo timestep).', low=100.0, high=5000.0
    ),
    Param(
        'update_rate',
        50.0,
        '[Hz] /clock is published at least this often (simulated time).',
        low=1.0,
        high=1000.0,
    ),
    Param(
        'control_rate',
        20.0,
        "[Hz] The graph's control rate (the profile's): the lockstep ticks.",
        low=1.0,
        high=1000.0,
    ),
    Param(
        'lockstep',
        True,
        'Hold the clock at each control tick until the arm command of that tick arrives.',
    ),
    Param(
        'lockstep_timeout',
        1.0,
        '[s] Wall-clock limit of one lockstep wait; after it the clock runs free until the '
        'next arm command.',
        low=0.01,
        high=60.0,
    ),
    Param(
        'max_real_time_factor',
        1.0,
        'Simulated seconds per wall-clock second at most; 0 = as fast as the graph keeps up.',
        low=0.0,
        high=100.0,
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
        CAMERA_IMAGE,
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
        self.interface: str = p['interface'] or DEFAULT_INTERFACE[self.robot]
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
        self.kinematics = get_kinematics(self.robot)
        self.gripper_pwm = 0.0
        self._closed = False
        self._action_servers: list[ActionServer] = []
        self.clock_pub = self.create_publisher(Clock, CLOCK, 10)
        self.joint_states_pub = self.create_publisher(
            JointState, p['joint_states_topic'] or robot_joint_states(self.robot_name), 10
        )
        self.object_poses_pub = self.create_publisher(MarkerArray, OBJECT_POSES, 10)
        camera_topic = p['camera_topic']
        self.image_pub = self.create_publisher(Image, camera_topic, qos_profile_sensor_data)
        self.camera_info_pub = self.create_publisher(
            CameraInfo, camera_info_topic(camera_topic), qos_profile_sensor_data
        )
        self._world_lock = threading.Lock()
        # simulated time in whole physics steps (no float drift); each event has a period in steps
        self._step = 0
        self._dt_ns = int(round(self.world.physics_dt * 1e9))
        self._periods = {
            name: self._steps_of(rate)
            for name, rate in (
                ('clock', p['update_rate']),
                ('control', p['control_rate']),
                ('joint_states', p['joint_states_rate']),
                ('camera', p['camera_rate']),
                ('object_poses', p['object_poses_rate']),
            )
            if float(rate) > 0.0
        }
        self._lockstep = bool(p['lockstep'])
        self._lockstep_timeout = float(p['lockstep_timeout'])
        self._max_rtf = float(p['max_real_time_factor'])
        self._commands = 0  # arm commands received (the lockstep acknowledgements)
        self._command_event = threading.Condition()
        self._gate = False  # armed by an arm command, disarmed by a timeout
        # gripper changes waiting for their control tick: (arm commands received before, change)
        self._gripper_changes: list[tuple[int, Callable[[], None]]] = []
        self.lockstep_waits = 0
        self.lockstep_timeouts = 0
        self._wall_start: float | None = None
        self._watch: Callable[[Any], bool] | None = None
        self.watch_time = math.nan  # [s] first control tick at which the watched predicate held
        self._create_inputs()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name='sim_loop', daemon=True)
        self._thread.start()

    def _steps_of(self, rate: float) -> int:
        """A period [physics steps] of a rate [Hz], at least one step."""
        return max(1, int(round(1.0 / (float(rate) * self.world.physics_dt))))

    @property
    def sim_time(self) -> float:
        """[s] simulated time since the simulator started."""
        return self._step * self._dt_ns * 1e-9

    def real_time_factor(self) -> float:
        """Simulated seconds per wall-clock second since the loop started (NaN before)."""
        if self._wall_start is None:
            return math.nan
        wall = time.monotonic() - self._wall_start
        return self.sim_time / wall if wall > 0 else math.nan

    def _stamp(self):
        return Time(nanoseconds=self._step * self._dt_ns).to_msg()

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
    # Commands arrive on the executor thread while sim_loop steps physics: the world lock keeps
    # each change between two physics steps. An arm command is also the lockstep's
    # acknowledgement of the control tick.
    def on_joint_group(self, msg) -> None:
        if msg.name != 'arm':
            self.get_logger().warning(
                f'joint_group {msg.name!r} is not simulated (only "arm")',
                throttle_duration_sec=5.0,
            )
            return
        self._set_targets(list(msg.cmd))
        self._arm_command()

    def on_joint_single(self, msg) -> None:
        if msg.name == 'gripper':
            pwm = self.gripper_pwm = float(msg.cmd)

            def change() -> None:
                if pwm != 0.0 and math.isfinite(pwm):
                    self.world.set_gripper(1.0 if pwm > 0.0 else 0.0)
                else:
                    self.world.set_gripper(self.world.gripper_opening())

            self._defer_gripper(change)
            return
        if msg.name in self.world.joint_names:
            with self._world_lock:
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
            with self._world_lock:
                self.world.set_arm_trajectory(points)
        except ValueError as err:
            self.get_logger().warning(f'trajectory refused: {err}', throttle_duration_sec=5.0)
        self._arm_command()

    def on_gripper_trajectory(self, msg: JointTrajectory) -> None:
        if 'left_finger' not in msg.joint_names or not msg.points:
            return
        position = msg.points[-1].positions[list(msg.joint_names).index('left_finger')]
        self._defer_gripper(lambda: self.world.set_gripper_width(2.0 * float(position)))

    def on_equilibrium_pose(self, msg: PoseStamped) -> None:
        try:
            target = pose_to_matrix(msg.pose)
        except InvalidPoseError as exc:
            self.get_logger().warning(
                f'equilibrium pose refused: {exc}', throttle_duration_sec=5.0
            )
            self._arm_command()  # a command arrived (lockstep), it moves nothing
            return
        with self._world_lock:
            q = self.world.arm_q()
        result = self.kinematics.ik(target, q)
        if not result.ok:
            self.get_logger().warning(
                f'equilibrium pose unreachable: {result.reason}: {result.message}',
                throttle_duration_sec=5.0,
            )
        else:
            self._set_targets(result.q)
        self._arm_command()

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
        """An execute callback: queue the goal for its control tick and succeed at once."""

        def execute(goal_handle):
            request = goal_handle.request
            self._defer_gripper(lambda: apply(request))
            with self._world_lock:
                opening = self.world.gripper_opening()
            goal_handle.succeed()
            result = action_type.Result()
            if hasattr(result, 'success'):
                result.success = True
            else:
                lo = 2.0 * self.world.spec.finger_range[0]
                hi = 2.0 * self.world.spec.finger_range[1]
                result.position = 0.5 * (lo + opening * (hi - lo))
                result.reached_goal = True
            return result

        return execute

    def _arm_command(self) -> None:
        with self._command_event:
            self._commands += 1
            self._gate = self._lockstep
            self._command_event.notify_all()

    def _defer_gripper(self, change: Callable[[], None]) -> None:
        """Queue a gripper change (called with the world lock held) for its control tick.

        The adapter sends a tick's gripper command after its arm command, and the lockstep waits
        for the arm command only: applied on arrival, the gripper moved at whatever physics step
        the command came in, which load shifted (0.2 mm of trajectory, run to run). In lockstep it
        takes effect at the control tick after that of the last arm command before it, in every
        run; a gripper command has a whole lockstep round trip to arrive.
        """
        with self._command_event:
            self._gripper_changes.append((self._commands, change))

    def _apply_gripper_changes(self) -> None:
        """At a control tick: the queued gripper changes whose tick has come (all of them while
        the clock runs free)."""
        with self._command_event:
            due = [c for n, c in self._gripper_changes if not self._gate or n < self._commands]
            self._gripper_changes = [
                (n, c) for n, c in self._gripper_changes if self._gate and n >= self._commands
            ]
        for change in due:
            try:
                with self._world_lock:
                    change()
            except ValueError as exc:  # a non-finite width: refused, the simulator goes on
                self.get_logger().warning(
                    f'gripper command refused: {exc}', throttle_duration_sec=5.0
                )

    # ------------------------------------------------------------------ the simulated clock
    def inspect(self, fn: Callable[[Any], T]) -> T:
        """Runs fn(world) under the physics lock (a consistent state for checks from other threads,
        e.g. a task's success predicate in ``openvla-ros evaluate``)."""
        with self._world_lock:
            return fn(self.world)

    def watch(self, predicate: Callable[[Any], bool] | None) -> None:
        """Evaluates predicate(world) at every control tick from now on; ``watch_time`` becomes
        the simulated time of the first tick where it holds (e.g. a task's success, found at the
        same instant in every run, whatever the machine's load)."""
        with self._world_lock:
            self._watch = predicate
            self.watch_time = math.nan

    def _loop(self) -> None:
        """Advances simulated time event by event; renders on this thread only (the GL context
        belongs to the thread that made it)."""
        try:
            self._wall_start = anchor_wall = time.monotonic()
            anchor_step = 0
            self._publish_due(0)
            while not self._stop.is_set():
                step = min((self._step // n + 1) * n for n in self._periods.values())
                if self._max_rtf > 0.0:
                    # at most max_real_time_factor; after falling behind, do not sprint to catch up
                    due = anchor_wall + (step - anchor_step) * self._dt_ns * 1e-9 / self._max_rtf
                    now = time.monotonic()
                    if now > due:
                        anchor_wall, anchor_step = now, step
                    elif self._stop.wait(due - now):
                        break
                control_tick = step % self._periods['control'] == 0
                with self._world_lock:
                    self.world.step((step - self._step) * self.world.physics_dt)
                    self._step = step
                    if control_tick and self._watch is not None and math.isnan(self.watch_time):
                        if self._watch(self.world):
                            self.watch_time = self.sim_time
                with self._command_event:
                    commands = self._commands
                self._publish_due(step)
                if control_tick and self._gate:
                    self._wait_for_command(commands)
                if control_tick:
                    self._apply_gripper_changes()
        except Exception as exc:  # noqa: BLE001 - a dead simulator must say why
            # (Ctrl-C shuts the context down mid-publish: that is the shutdown, not an error)
            if not self._stop.is_set() and self.context.ok():
                self.get_logger().error(f'simulator loop stopped: {type(exc).__name__}: {exc}')
        finally:
            with self._world_lock:
                self.world.close()  # frees the renderer on the thread that created it

    def _wait_for_command(self, before: int) -> None:
        """Lockstep: hold the clock at this control tick until its arm command arrives."""
        self.lockstep_waits += 1
        with self._command_event:
            arrived = self._command_event.wait_for(
                lambda: self._commands > before or self._stop.is_set(),
                timeout=self._lockstep_timeout,
            )
            if arrived:
                return
            self._gate = False
        self.lockstep_timeouts += 1
        self.get_logger().warning(
            f'lockstep: no arm command within {self._lockstep_timeout:.2f} s (wall clock) at '
            f't = {self.sim_time:.3f} s; the clock runs free until commands return',
            throttle_duration_sec=5.0,
        )

    def _publish_due(self, step: int) -> None:
        """/clock first, then the sensors whose period ends at this step, stamped with it."""
        clock = Clock()
        clock.clock = self._stamp()
        self.clock_pub.publish(clock)
        due = {name for name, n in self._periods.items() if step % n == 0}
        if 'joint_states' in due:
            self.publish_joint_states()
        if 'object_poses' in due:
            self.publish_object_poses()
        if 'camera' in due:
            self.publish_camera()

    def publish_joint_states(self) -> None:
        with self._world_lock:
            state = self.world.joint_state()
        msg = JointState()
        msg.header.stamp = self._stamp()
        msg.name = list(state.name)
        msg.position = [float(v) for v in state.position]
        msg.velocity = [float(v) for v in state.velocity]
        msg.effort = [float(v) for v in state.effort]
        self.joint_states_pub.publish(msg)

    def publish_camera(self) -> None:
        with self._world_lock:
            pixels = self.world.render()
        intrinsics = self.world.camera_info()
        image = Image()
        image.header.stamp = self._stamp()
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

    def publish_object_poses(self) -> None:
        stamp = self._stamp()
        with self._world_lock:
            poses = sorted(self.world.object_poses().items())
        markers = MarkerArray()
        for i, (name, pose) in enumerate(poses):
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
            with self._world_lock:
                self.world.set_arm_targets(np.asarray(q, dtype=float))
        except ValueError as err:
            self.get_logger().warning(f'arm command refused: {err}', throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stops the simulation loop and the action servers and closes the world (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with self._command_event:
            self._command_event.notify_all()
        for server in self._action_servers:
            server.destroy()
        self._action_servers.clear()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)  # the thread closes the world

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Runs the simulator until Ctrl-C or shutdown."""
    return run_node(SimNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
