"""Arm adapter node: safe end-effector targets -> the robot driver's own interface.

Subscribes the safety monitor's ``/openvla/safe_ee_target`` (openvla_ros/EndEffectorTarget)
and ``joint_states`` (remappable; IK seed and measured pose), and sends, per ``interface``:

- ``xs_sdk``: ``/<robot_name>/commands/joint_group`` (interbotix_xs_msgs/JointGroupCommand
  'arm') and ``/<robot_name>/commands/joint_single`` (JointSingleCommand 'gripper', pwm);
- ``ros2_control``: ``/<robot_name>/arm_controller/joint_trajectory`` and
  ``/<robot_name>/gripper_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory);
- ``franka_impedance``: geometry_msgs/PoseStamped on the equilibrium pose topic, gripper through
  the franka_gripper ``move``/``grasp`` actions (franka_msgs) or ``gripper_action`` (control_msgs);
- ``franka_jtc``: JointTrajectory to ``/<arm>_arm_controller/joint_trajectory``, gripper as above;
- ``servo``: geometry_msgs/TwistStamped on ``/servo_node/delta_twist_cmds``, republished at
  ``servo_publish_rate`` (Servo halts after 0.1 s without commands).

The mapping itself (IK, joint limits after IK, gripper units) is ``openvla_ros.adapters``; a
refused target sends nothing and is reported in ``/diagnostics`` and a throttled log line. The
joint-velocity check allows the motion of the real time since the last command (capped at one
period), so a burst of targets cannot move the joints faster than their limits.

Only the safety monitor's output may drive the arm: a ``target_topic`` other than
``/openvla/safe_ee_target`` is refused at start-up unless ``unsafe_allow_unchecked_targets``
is set.

Franka gripper goals count as sent only once the driver accepts them; a rejected or aborted goal is
retried once, then reported (error log and diagnostics); goals in flight are cancelled when
``/openvla/estop`` engages.
"""

from __future__ import annotations

from typing import Any

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
import numpy as np
from rclpy.action import ActionClient
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from openvla_ros.adapters import (
    AdapterConfig,
    AdapterResult,
    ArmAdapter,
    changed_meaningfully,
    EndEffectorCommand,
    FRANKA_GRIPPER_INTERFACES,
    FrankaGripperConfig,
    FrankaGripperValues,
    GripperCommandValues,
    INTERFACES,
    JointGroupCommandValues,
    JointLimitConfig,
    JointSingleCommandValues,
    JointTrajectoryValues,
    PoseValues,
    REJECT_INVALID_POSE,
    TwistValues,
    zero_twist,
)
from openvla_ros.adapters.topics import (
    arm_trajectory_topic,
    gripper_trajectory_topic,
    xs_sdk_topics,
)
from openvla_ros.control.kinematics import KNOWN_ARMS
from openvla_ros.msg import EndEffectorTarget
from openvla_ros.msgio.topics import DIAGNOSTICS, ESTOP, NODE_JOINT_STATES, SAFE_EE_TARGET
from openvla_ros.nodes._common import declare_params, diagnostic, ESTOP_QOS, Param, run_node
from openvla_ros.nodes._conversions import InvalidPoseError, pose_to_matrix

# The safety monitor's output: the only topic allowed to drive the arm.
SAFE_TARGET_TOPIC = SAFE_EE_TARGET
# Status codes of action_msgs/GoalStatus the adapter tells apart.
_GOAL_SUCCEEDED = 4
_GOAL_ABORTED = 6

# Where the driver listens; the simulator serves the same topics with the same parameters.
DRIVER_TOPIC_PARAMS = (
    Param(
        'arm_trajectory_topic',
        '',
        'ros2_control / franka_jtc: arm JointTrajectory topic; "" = '
        '/<robot_name>/arm_controller/joint_trajectory (ros2_control) or '
        '/<robot>_arm_controller/joint_trajectory (franka_jtc).',
    ),
    Param(
        'gripper_trajectory_topic',
        '',
        'ros2_control: gripper JointTrajectory topic; "" = '
        '/<robot_name>/gripper_controller/joint_trajectory.',
    ),
    Param(
        'equilibrium_pose_topic',
        '/cartesian_impedance_example_controller/equilibrium_pose',
        'franka_impedance: PoseStamped target of the impedance controller.',
    ),
    Param(
        'franka_gripper_namespace',
        '/franka_gripper',
        'franka_*: namespace of the gripper actions (older releases: /<arm_id>_gripper).',
    ),
)

PARAMS = (
    Param('interface', 'xs_sdk', 'Driver interface the commands go to.', choices=INTERFACES),
    Param(
        'robot', 'wx250s', 'Arm model (kinematics and limits).', choices=KNOWN_ARMS
    ),
    Param(
        'robot_name', '', 'Interbotix / ros2_control namespace of the driver topics; "" = robot.'
    ),
    Param(
        'control_rate',
        5.0,
        '[Hz] Rate of the safe targets: a trajectory point is reached one '
        'period after it is sent, the servo twist closes the error in one period.',
        low=0.5,
        high=1000.0,
    ),
    Param(
        'target_topic', SAFE_TARGET_TOPIC, 'Safe end-effector targets (EndEffectorTarget).'
    ),
    Param(
        'unsafe_allow_unchecked_targets',
        False,
        "UNSAFE: accept a target_topic other than the safety monitor's output (bench tests "
        'without the monitor only).',
    ),
    Param('frame_id', '', 'Base frame of sent poses and twists; "" = the target\'s frame_id.'),
    Param(
        'joint_limit_margin',
        0.0,
        '[rad] A solution must stay this far inside each joint limit.',
        low=0.0,
        high=0.4,
    ),
    Param(
        'velocity_scale',
        1.0,
        'Fraction of each joint velocity limit allowed between two '
        'commands (one period); 0 disables the check.',
        low=0.0,
        high=1.0,
    ),
    Param(
        'check_reach',
        True,
        'franka_impedance / servo: refuse targets without an IK solution inside the joint limits.',
    ),
    Param('arm_group', 'arm', 'xs_sdk: joint group of the arm.'),
    Param('gripper_joint', 'gripper', 'xs_sdk: gripper joint (pwm mode).'),
    Param(
        'gripper_pwm', 250.0, '[pwm] xs_sdk gripper effort: +open, -close.', low=1.0, high=885.0
    ),
    Param('finger_joint', 'left_finger', 'ros2_control: gripper controller joint.'),
    Param(
        'franka_gripper_interface',
        'franka_actions',
        'franka_*: move/grasp (franka_msgs) or gripper_action (control_msgs/GripperCommand).',
        choices=FRANKA_GRIPPER_INTERFACES,
    ),
    Param('gripper_speed', 0.1, '[m/s] franka gripper speed.', low=0.001, high=0.2),
    Param('gripper_force', 20.0, '[N] franka grasp force.', low=1.0, high=140.0),
    Param(
        'grasp_threshold', 0.5, 'An opening below it grasps, above it moves.', low=0.01, high=1.0
    ),
    Param(
        'min_gripper_width_change',
        0.005,
        '[m] A new gripper goal only for a larger change.',
        low=0.0001,
        high=0.08,
    ),
    Param('servo_twist_topic', '/servo_node/delta_twist_cmds', 'servo: TwistStamped input.'),
    Param(
        'servo_start_service',
        '/servo_node/start_servo',
        'servo: std_srvs/Trigger called once when it appears (Humble); "" = never.',
    ),
    Param('servo_publish_rate', 50.0, '[Hz] servo: twist republish rate.', low=1.0, high=1000.0),
    Param(
        'target_timeout',
        0.5,
        '[s] servo: a target older than this gives a zero twist.',
        low=0.01,
        high=10.0,
    ),
    Param('max_linear_speed', 0.25, '[m/s] servo: clip of the linear twist.', low=0.001, high=2.0),
    Param(
        'max_angular_speed', 1.0, '[rad/s] servo: clip of the angular twist.', low=0.001, high=5.0
    ),
    Param(
        'log_throttle',
        2.0,
        '[s] At most one refusal log line per this period.',
        low=0.0,
        high=60.0,
    ),
    *DRIVER_TOPIC_PARAMS,
)

_OK = 0  # diagnostic_msgs/DiagnosticStatus levels
_WARN = 1

_VENDOR_PACKAGES = {
    'interbotix_xs_msgs.msg': 'interbotix_xs_msgs',
    'franka_msgs.action': 'franka_msgs',
    'control_msgs.action': 'control_msgs',
}


def import_vendor(module: str) -> Any:
    """Imports a driver's interface module; a missing one raises ImportError naming the package."""
    package = _VENDOR_PACKAGES.get(module, module.split('.')[0])
    try:
        return __import__(module, fromlist=['*'])
    except ImportError:
        raise ImportError(
            f'this interface needs the ROS package {package} ({module} cannot be imported): '
            'install '
            f'ros-$ROS_DISTRO-{package.replace("_", "-")} or source its workspace; for tests, '
            'scripts/build_fixture_interfaces.sh builds a fixture copy'
        ) from None


class ArmAdapterNode(Node):
    """Converts each safe target into one driver command (see the module docstring)."""

    def __init__(self, *, node_name: str = 'arm_adapter', **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.params = declare_params(self, PARAMS)
        p = self.params
        if p['target_topic'] != SAFE_TARGET_TOPIC:
            if not p['unsafe_allow_unchecked_targets']:
                raise ValueError(
                    f'target_topic {p["target_topic"]!r} bypasses the safety monitor (its output '
                    f'is {SAFE_TARGET_TOPIC}); set unsafe_allow_unchecked_targets:=true only for '
                    'a bench test without the monitor'
                )
            self.get_logger().warning(
                f'UNSAFE: driving the arm from {p["target_topic"]!r}, not from the safety '
                f'monitor ({SAFE_TARGET_TOPIC})'
            )
        self.interface: str = p['interface']
        self.robot: str = p['robot']
        self.robot_name: str = p['robot_name'] or self.robot
        self.period = 1.0 / float(p['control_rate'])
        self.adapter = ArmAdapter(self._adapter_config())
        self.measured_q: np.ndarray | None = None
        self.last_target: EndEffectorCommand | None = None
        self.last_target_time: float | None = None
        self.last_result: AdapterResult | None = None
        self.counts = {'sent': 0, 'refused': 0, 'targets': 0}
        self._closed = False
        self._timers: list = []
        self._clients: list = []
        self._arm_pub = None
        self._gripper_pub = None
        self._gripper_clients: dict[str, tuple[ActionClient, Any]] = {}
        self._gripper_pending: Any = None  # goal values sent, not yet accepted or refused
        self._gripper_handles: list = []  # accepted goals still running
        self._gripper_retried: Any = None  # goal values already retried once
        self.gripper_failures: list[str] = []  # reported failures (diagnostics)
        self._estop = False
        self._start_client = None
        self._servo_started = False
        self._create_outputs()
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self.create_subscription(EndEffectorTarget, p['target_topic'], self.on_target, 10)
        self.create_subscription(JointState, NODE_JOINT_STATES, self.on_joint_states, 10)
        self.create_subscription(Bool, ESTOP, self.on_estop, ESTOP_QOS)
        self._timers.append(self.create_timer(1.0, self.on_diagnostics_timer))

    # ------------------------------------------------------------------ construction helpers
    def _adapter_config(self) -> AdapterConfig:
        p = self.params
        return AdapterConfig(
            interface=self.interface,
            robot=self.robot,
            frame_id=p['frame_id'],
            arm_group=p['arm_group'],
            gripper_joint=p['gripper_joint'],
            gripper_pwm=float(p['gripper_pwm']),
            finger_joint=p['finger_joint'],
            franka_gripper=FrankaGripperConfig(
                speed=float(p['gripper_speed']),
                force=float(p['gripper_force']),
                grasp_threshold=float(p['grasp_threshold']),
                min_width_change=float(p['min_gripper_width_change']),
                max_effort=float(p['gripper_force']),
            ),
            franka_gripper_interface=p['franka_gripper_interface'],
            limits=JointLimitConfig(float(p['joint_limit_margin']), float(p['velocity_scale'])),
            check_reach=bool(p['check_reach']),
            max_linear_speed=float(p['max_linear_speed']),
            max_angular_speed=float(p['max_angular_speed']),
        )

    def _create_outputs(self) -> None:
        p = self.params
        if self.interface == 'xs_sdk':
            msgs = import_vendor('interbotix_xs_msgs.msg')
            group_topic, single_topic = xs_sdk_topics(self.robot_name)
            self._arm_pub = self.create_publisher(msgs.JointGroupCommand, group_topic, 10)
            self._gripper_pub = self.create_publisher(msgs.JointSingleCommand, single_topic, 10)
        elif self.interface == 'ros2_control':
            arm_topic = arm_trajectory_topic(
                'ros2_control', self.robot, self.robot_name, p['arm_trajectory_topic']
            )
            grip_topic = gripper_trajectory_topic(self.robot_name, p['gripper_trajectory_topic'])
            self._arm_pub = self.create_publisher(JointTrajectory, arm_topic, 10)
            self._gripper_pub = self.create_publisher(JointTrajectory, grip_topic, 10)
        elif self.interface == 'franka_jtc':
            arm_topic = arm_trajectory_topic(
                'franka_jtc', self.robot, self.robot_name, p['arm_trajectory_topic']
            )
            self._arm_pub = self.create_publisher(JointTrajectory, arm_topic, 10)
        elif self.interface == 'franka_impedance':
            self._arm_pub = self.create_publisher(PoseStamped, p['equilibrium_pose_topic'], 10)
        else:  # servo
            self._arm_pub = self.create_publisher(TwistStamped, p['servo_twist_topic'], 10)
            self._timers.append(
                self.create_timer(1.0 / float(p['servo_publish_rate']), self.on_servo_timer)
            )
            if p['servo_start_service']:
                self._start_client = self.create_client(Trigger, p['servo_start_service'])
        if self.interface.startswith('franka_'):
            gns = p['franka_gripper_namespace'].rstrip('/')
            if p['franka_gripper_interface'] == 'gripper_action':
                control = import_vendor('control_msgs.action')
                self._gripper_clients['gripper_action'] = (
                    ActionClient(self, control.GripperCommand, f'{gns}/gripper_action'),
                    control.GripperCommand.Goal,
                )
            else:
                franka = import_vendor('franka_msgs.action')
                self._gripper_clients['move'] = (
                    ActionClient(self, franka.Move, f'{gns}/move'),
                    franka.Move.Goal,
                )
                self._gripper_clients['grasp'] = (
                    ActionClient(self, franka.Grasp, f'{gns}/grasp'),
                    franka.Grasp.Goal,
                )

    # ------------------------------------------------------------------ callbacks
    def on_joint_states(self, msg: JointState) -> None:
        q = self.adapter.solver.arm_positions(msg.name, msg.position)
        if q is not None:
            self.measured_q = q

    def on_target(self, msg: EndEffectorTarget) -> None:
        self.counts['targets'] += 1
        try:
            pose = pose_to_matrix(msg.pose)
        except InvalidPoseError as exc:
            # nothing to command: refused, and no servo motion toward an older target either
            self.last_target = None
            self._apply(AdapterResult(False, REJECT_INVALID_POSE, str(exc)))
            return
        target = EndEffectorCommand(pose, float(msg.gripper), bool(msg.hold), msg.header.frame_id)
        self.last_target = target
        self.last_target_time = self._now()
        self._apply(
            self.adapter.command(target, self.measured_q, period=self.period, now=self._now())
        )

    def on_estop(self, msg: Bool) -> None:
        """Cancels Franka gripper goals in flight (a grasp must not go on through an e-stop)."""
        self._estop = bool(msg.data)
        if not self._estop:
            return
        handles, self._gripper_handles = self._gripper_handles, []
        for handle in handles:
            handle.cancel_goal_async()
        self._gripper_pending = None
        # after the reset, whatever the monitor then commands is a new goal
        self.adapter.last_gripper_goal = None
        if handles:
            self.get_logger().warning(f'e-stop: cancelled {len(handles)} gripper goal(s)')

    def on_servo_timer(self) -> None:
        self._start_servo_once()
        target = self.last_target
        if target is None or self.measured_q is None or self.last_target_time is None:
            return
        if self._now() - self.last_target_time > float(self.params['target_timeout']):
            frame_id = self.params['frame_id'] or target.frame_id
            self._publish_arm(zero_twist(frame_id))
            return
        result = self.adapter.command(target, self.measured_q, period=self.period)
        if result.ok and result.arm is not None:
            self._publish_arm(result.arm)

    def on_diagnostics_timer(self) -> None:
        self._publish_diagnostics()

    # ------------------------------------------------------------------ output
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _apply(self, result: AdapterResult) -> None:
        changed = self.last_result is None or (self.last_result.ok, self.last_result.reason) != (
            result.ok, result.reason)
        self.last_result = result
        if not result.ok:
            self.counts['refused'] += 1
            self.get_logger().warning(
                f'target refused: {result.reason}: {result.message}',
                throttle_duration_sec=float(self.params['log_throttle']),
            )
        else:
            self.counts['sent'] += 1
            if result.arm is not None:
                self._publish_arm(result.arm)
            if result.gripper is not None:
                self._send_gripper(result.gripper)
        if changed:  # at once on a change; the 1 Hz timer publishes the rest
            self._publish_diagnostics()

    def _publish_arm(self, values) -> None:
        stamp = self.get_clock().now().to_msg()
        if isinstance(values, JointGroupCommandValues):
            msg = self._arm_pub.msg_type(name=values.name, cmd=[float(v) for v in values.cmd])
        elif isinstance(values, JointTrajectoryValues):
            msg = _trajectory(values)
        elif isinstance(values, PoseValues):
            msg = PoseStamped()
            msg.header.stamp = stamp
            msg.header.frame_id = values.frame_id
            (msg.pose.position.x, msg.pose.position.y, msg.pose.position.z) = values.position
            o = msg.pose.orientation
            (o.x, o.y, o.z, o.w) = values.orientation
        elif isinstance(values, TwistValues):
            msg = TwistStamped()
            msg.header.stamp = stamp
            msg.header.frame_id = values.frame_id
            t = msg.twist
            (t.linear.x, t.linear.y, t.linear.z) = values.linear
            (t.angular.x, t.angular.y, t.angular.z) = values.angular
        else:
            raise TypeError(f'no message for {type(values).__name__}')
        self._arm_pub.publish(msg)

    def _send_gripper(self, values) -> None:
        if isinstance(values, JointSingleCommandValues):
            self._gripper_pub.publish(
                self._gripper_pub.msg_type(name=values.name, cmd=float(values.cmd))
            )
            return
        if isinstance(values, JointTrajectoryValues):
            self._gripper_pub.publish(_trajectory(values))
            return
        if self._estop:
            return  # no gripper goal during an e-stop
        pending = self._gripper_pending
        if pending is not None and not changed_meaningfully(
            values, pending, self.adapter.config.franka_gripper.min_width_change
        ):
            return  # (nearly) the same goal is on its way, not yet accepted
        key = values.action if isinstance(values, FrankaGripperValues) else 'gripper_action'
        client, goal_type = self._gripper_clients[key]
        if not client.server_is_ready():
            self.get_logger().warning(
                f'gripper action server {key} is not available; goal dropped',
                throttle_duration_sec=float(self.params['log_throttle']),
            )
            return
        self._gripper_pending = values
        future = client.send_goal_async(self._gripper_goal(values, goal_type))
        future.add_done_callback(lambda f, v=values: self._on_gripper_response(f, v))

    def _gripper_goal(self, values, goal_type):
        goal = goal_type()
        if isinstance(values, GripperCommandValues):
            goal.command.position = float(values.position)
            goal.command.max_effort = float(values.max_effort)
        else:
            goal.width = float(values.width)
            goal.speed = float(values.speed)
            if values.action == 'grasp':
                goal.force = float(values.force)
                goal.epsilon.inner = float(values.epsilon_inner)
                goal.epsilon.outer = float(values.epsilon_outer)
        return goal

    def _on_gripper_response(self, future, values) -> None:
        """The driver accepted or rejected a gripper goal: only an accepted one counts as sent."""
        handle = future.result() if future.exception() is None else None
        if values == self._gripper_pending:
            self._gripper_pending = None
        if handle is None or not handle.accepted:
            self._gripper_failed(values, 'rejected by the driver')
            return
        if self._estop:
            handle.cancel_goal_async()
            return
        self.adapter.gripper_goal_sent(values)
        self._gripper_handles.append(handle)
        handle.get_result_async().add_done_callback(
            lambda f, v=values, h=handle: self._on_gripper_result(f, v, h)
        )

    def _on_gripper_result(self, future, values, handle) -> None:
        if handle in self._gripper_handles:
            self._gripper_handles.remove(handle)
        response = future.result() if future.exception() is None else None
        status = getattr(response, 'status', None)
        if status == _GOAL_SUCCEEDED:
            result = getattr(response, 'result', None)
            if getattr(result, 'success', True) is False:  # franka_msgs: success + error
                self._gripper_failed(values, f'failed: {getattr(result, "error", "")}')
            else:
                self._gripper_retried = None
            return
        if status == _GOAL_ABORTED:
            self._gripper_failed(values, 'aborted by the driver')

    def _gripper_failed(self, values, why: str) -> None:
        """Retry a refused or failed goal once; report it after that."""
        if self.adapter.last_gripper_goal == values:
            self.adapter.last_gripper_goal = None
        if self._estop or self._closed:
            return
        if self._gripper_retried != values:
            self._gripper_retried = values
            self.get_logger().warning(f'gripper goal {values} {why}; retrying once')
            self._send_gripper(values)
            return
        text = f'gripper goal {values} {why} twice; not retried again'
        self.gripper_failures.append(text)
        self.get_logger().error(text)
        # keep it from being re-sent every period: it counts as the last goal until the command
        # changes
        self.adapter.gripper_goal_sent(values)
        self._publish_diagnostics()

    def _start_servo_once(self) -> None:
        if self._servo_started or self._start_client is None:
            return
        if self._start_client.service_is_ready():
            self._start_client.call_async(Trigger.Request())
            self._servo_started = True
            self.get_logger().info('called MoveIt Servo start_servo')

    def _publish_diagnostics(self) -> None:
        result = self.last_result
        values: dict[str, Any] = {
            'interface': self.interface,
            'robot': self.robot,
            **self.counts,
            'joint_state': self.measured_q is not None,
            'gripper_failures': len(self.gripper_failures),
        }
        if self.gripper_failures:
            values['gripper_failure'] = self.gripper_failures[-1]
        if result is None:
            level, message = _OK, 'no target yet'
        else:
            level = _OK if result.ok else _WARN
            message = f'{result.reason}: {result.message}'
            values['reason'] = result.reason
            if result.ik is not None:
                values.update(
                    ik_reason=result.ik.reason,
                    ik_iterations=result.ik.iterations,
                    ik_position_error=result.ik.position_error,
                    ik_orientation_error=result.ik.orientation_error,
                )
            if result.q is not None:
                values['q'] = ' '.join(f'{v:.4f}' for v in result.q)
        self.diagnostics_pub.publish(
            diagnostic(self, f'{self.get_name()}: {self.interface}', level, message, values)
        )

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stops timers and action/service clients (idempotent); called by destroy_node too."""
        if self._closed:
            return
        self._closed = True
        for timer in self._timers:
            timer.cancel()
            self.destroy_timer(timer)
        self._timers.clear()
        for client, _ in self._gripper_clients.values():
            client.destroy()
        self._gripper_clients.clear()
        if self._start_client is not None:
            self.destroy_client(self._start_client)
            self._start_client = None

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def _trajectory(values: JointTrajectoryValues) -> JointTrajectory:
    """One-point JointTrajectory; a zero stamp means "start now" to a trajectory controller."""
    msg = JointTrajectory()
    msg.joint_names = list(values.joint_names)
    seconds = int(values.time_from_start)
    nanoseconds = int(round((values.time_from_start - seconds) * 1e9))
    msg.points = [
        JointTrajectoryPoint(
            positions=[float(v) for v in values.positions],
            time_from_start=Duration(sec=seconds, nanosec=nanoseconds),
        )
    ]
    return msg


def main(args: list[str] | None = None) -> int:
    """Runs the node until Ctrl-C or shutdown."""
    return run_node(ArmAdapterNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
