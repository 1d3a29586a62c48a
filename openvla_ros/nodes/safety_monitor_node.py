"""safety_monitor: the last gate before hardware, and the only publisher to the arm adapter.

Every end-effector target from the limiter goes through ``openvla_ros.control.SafetyMonitor``:
finite numbers, workspace box and orientation bounds (the shared ``workspace_*`` /
``orientation_*`` parameters the limiter also reads), step limits per unit of real time, IK and
joint limits, the commanded-vs-measured tracking error, watchdogs on the camera, joint states,
commands and the policy, and an e-stop that latches until ``~/reset`` is called. What leaves on
``/openvla/safe_ee_target`` is either a checked target or the hold pose. Status at the control
rate, and at once on every change of state or reasons, on ``/openvla/safety_status``;
diagnostics and rviz markers (workspace box, safe target, state text) too.

The camera watchdog follows ``image_transport`` (``image`` raw or ``image/compressed``) and reads
only the header stamp of the serialized message (a ``raw=True`` subscription): frames are never
decoded here. The policy watchdog counts a chunk on ``/openvla/action_chunk`` (also read raw) or a
``/openvla/policy_status`` as a sign of life; ``/instruction`` says whether one is expected.
"""

from __future__ import annotations

from functools import partial

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Point
import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from openvla_ros.adapters.gripper import measured_opening
from openvla_ros.control import get_kinematics, SafetyConfig, SafetyMonitor, SafetyState
from openvla_ros.control.config import BOUNDS_KEYS
from openvla_ros.control.kinematics import KNOWN_ARMS
from openvla_ros.msg import ActionChunk, EndEffectorTarget, PolicyStatus, SafetyStatus
from openvla_ros.msgio.topics import (
    ACTION_CHUNK,
    DIAGNOSTICS,
    EE_TARGET,
    ESTOP,
    IMAGE,
    IMAGE_COMPRESSED,
    INSTRUCTION,
    MARKERS,
    NODE_JOINT_STATES,
    POLICY_STATUS,
    SAFE_EE_TARGET,
    SAFETY_STATUS,
)
from openvla_ros.nodes._common import (
    declare_dataclass,
    declare_params,
    diagnostic,
    ESTOP_QOS,
    Param,
    run_node,
    stamp_to_sec,
)
from openvla_ros.nodes._conversions import (
    header_stamp_from_cdr,
    InvalidPoseError,
    joint_positions,
    matrix_to_pose,
    pose_to_matrix,
)

PARAMS = (
    Param(
        'robot',
        'wx250s',
        'Kinematics model for the IK and joint-limit check.',
        choices=KNOWN_ARMS,
    ),
    Param('base_frame', 'base_link', 'frame_id of the workspace box and the targets.'),
    Param(
        'control_rate',
        20.0,
        'Control period rate: status, watchdog ticks, step limits [Hz].',
        low=1.0,
        high=1000.0,
    ),
    Param(
        'check_ik',
        True,
        'Solve IK for each target and hold when it fails or breaks a joint limit.',
    ),
    Param(
        'image_transport',
        'raw',
        'Camera watchdog input: image (sensor_msgs/Image) or image/compressed '
        '(CompressedImage); only the header stamp is read.',
        choices=('raw', 'compressed'),
    ),
)
# PolicyStatus states that hold the arm (HALT_FOR_POLICY_FAULT): a failing step, a failed load.
_POLICY_FAULTS = (PolicyStatus.STATE_ERROR, PolicyStatus.STATE_LOAD_FAILED)
# [s] at most one warning per this period for repeated bad targets
_LOG_THROTTLE = 2.0
# [s] rviz target markers at most this often (and on every change of state): they are for eyes
_MARKER_PERIOD = 0.1
_DIAG_LEVEL = {
    SafetyState.OK: DiagnosticStatus.OK,
    SafetyState.LIMITED: DiagnosticStatus.WARN,
    SafetyState.HOLD: DiagnosticStatus.WARN,
    SafetyState.ESTOP: DiagnosticStatus.ERROR,
    SafetyState.FAULT: DiagnosticStatus.ERROR,
}
_STATE_COLOUR = {
    SafetyState.OK: (0.1, 0.8, 0.1),
    SafetyState.LIMITED: (0.9, 0.8, 0.1),
    SafetyState.HOLD: (1.0, 0.5, 0.0),
    SafetyState.ESTOP: (1.0, 0.0, 0.0),
    SafetyState.FAULT: (0.8, 0.0, 0.8),
}


class SafetyMonitorNode(Node):
    """Checks targets, runs the watchdogs, latches the e-stop."""

    def __init__(self, *, node_name: str = 'safety_monitor', **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        self.p = declare_params(self, PARAMS)
        values = declare_dataclass(
            self, 'safety', SafetyConfig, exclude=('control_rate',) + BOUNDS_KEYS
        )
        # the safe set: shared parameters (the profile's /** section), also read by the limiter
        values.update(declare_dataclass(self, '', SafetyConfig, only=BOUNDS_KEYS))
        values['control_rate'] = self.p['control_rate']
        self.config = SafetyConfig.from_dict(values)
        self.monitor = SafetyMonitor(self.config)
        self.kinematics = get_kinematics(self.p['robot'])
        self.period = 1.0 / self.p['control_rate']
        self._q = None  # latest measured joints
        self._last_target_time = -np.inf
        self._last_state = None
        self._last_status_key = None
        self._marker_state = None  # state and time of the last target markers (rviz)
        self._marker_time = -np.inf

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(
            EndEffectorTarget, EE_TARGET, self.on_ee_target, reliable
        )
        self.create_subscription(JointState, NODE_JOINT_STATES, self.on_joint_states, 10)
        if self.p['image_transport'] == 'raw':
            self.create_subscription(
                Image, IMAGE, self.on_image, qos_profile_sensor_data, raw=True
            )
        else:
            self.create_subscription(
                CompressedImage, IMAGE_COMPRESSED, self.on_image, qos_profile_sensor_data,
                raw=True,
            )
        self.create_subscription(Bool, ESTOP, self.on_estop, ESTOP_QOS)
        self.create_subscription(PolicyStatus, POLICY_STATUS, self.on_policy_status,
                                 reliable)
        self.create_subscription(String, INSTRUCTION, self.on_instruction, reliable)
        self.create_subscription(
            ActionChunk, ACTION_CHUNK, self.on_action_chunk, reliable, raw=True
        )
        self.create_service(Trigger, '~/reset', self.on_reset)
        self._safe_pub = self.create_publisher(
            EndEffectorTarget, SAFE_EE_TARGET, reliable
        )
        self._status_pub = self.create_publisher(SafetyStatus, SAFETY_STATUS, reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self._marker_pub = self.create_publisher(MarkerArray, MARKERS, 10)
        self.create_timer(self.period, self.on_control_timer)
        self.create_timer(1.0, self.on_diagnostics_timer)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs ---
    def on_image(self, data: bytes) -> None:
        stamp = header_stamp_from_cdr(data)
        if stamp is not None:
            self.monitor.on_image(stamp)

    def on_joint_states(self, msg: JointState) -> None:
        q = joint_positions(msg, self.kinematics.joint_names)
        if q is None:
            return  # e.g. a gripper-only message
        pose = self.kinematics.fk(q) if np.all(np.isfinite(q)) else None
        gripper = measured_opening(self.p['robot'], msg.name, msg.position)
        self.monitor.on_joint_state(
            q, stamp_to_sec(msg.header.stamp), pose=pose, gripper=gripper
        )
        self._q = q

    def on_instruction(self, msg: String) -> None:
        self.monitor.on_instruction(msg.data, self._now())

    def on_action_chunk(self, data: bytes) -> None:
        self.monitor.on_policy_alive(self._now())

    def on_ee_target(self, msg: EndEffectorTarget) -> None:
        self._last_target_time = self._now()
        ik = None
        if self.p['check_ik']:
            # Seed and jump reference: the joints of the monitor's hold pose (its last output),
            # or the measured joints when it was just re-anchored on the measured pose (a
            # tracking-error hold, start-up). Not the last target that passed: after a tracking
            # hold the arm never got there, and every target near the arm would look like a jump.
            hold_q = self.monitor.hold_q
            seed = hold_q if hold_q is not None else self._q
            if seed is not None:
                # a jump check (IK branch flips) over one period; the adapter checks joint
                # speeds over the real elapsed time and slows a step that came in too fast
                ik = partial(self.kinematics.ik, seed=seed, dt=self.period)
        try:
            pose = pose_to_matrix(msg.pose)
        except InvalidPoseError as exc:
            # A zero or non-finite quaternion is no pose: the core gets no matrix (never a NaN
            # one) and refuses it like any malformed target (REJECT_INVALID_POSE: hold).
            self.get_logger().warning(
                f'target refused: {exc}', throttle_duration_sec=_LOG_THROTTLE
            )
            pose = None
        decision = self.monitor.filter(pose, float(msg.gripper), self._now(), ik=ik)
        self._publish(decision)

    def on_policy_status(self, msg: PolicyStatus) -> None:
        # A failing policy (model errors, an unreachable policy server) holds the arm until it
        # recovers, rather than letting the last queued actions play out unobserved.
        self.monitor.on_policy(msg.state not in _POLICY_FAULTS, msg.message)
        self.monitor.on_policy_alive(self._now())

    def on_estop(self, msg: Bool) -> None:
        self.monitor.on_estop(bool(msg.data), self._now())
        if msg.data:
            self.get_logger().error('E-STOP engaged: holding; call ~/reset after releasing it')
            self._publish(self.monitor.tick(self._now()))  # hold now, not at the next period
        else:
            self.get_logger().warning('e-stop released; still latched until ~/reset')

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.monitor.reset(self._now())
        if response.success:
            self.get_logger().info(response.message)
        else:
            self.get_logger().warning(response.message)
        return response

    def on_control_timer(self) -> None:
        now = self._now()
        if now - self._last_target_time > 1.5 * self.period:
            self._publish(self.monitor.tick(now))  # no command this period: watchdogs and hold
        self._publish_status(now)

    def on_diagnostics_timer(self) -> None:
        s = self.monitor.status(self._now())
        self._diag_pub.publish(
            diagnostic(
                self,
                'openvla_ros: safety monitor',
                _DIAG_LEVEL[s.state],
                s.state.name + (': ' + '; '.join(s.messages) if s.messages else ''),
                {
                    'state': s.state.name,
                    'reasons': ','.join(s.reasons),
                    'passed': s.passed,
                    'clipped': s.clipped,
                    'rejected': s.rejected,
                    'estop_latched': s.estop_latched,
                    'image_age [s]': f'{s.image_age:.3f}',
                    'joint_state_age [s]': f'{s.joint_state_age:.3f}',
                    'command_age [s]': f'{s.command_age:.3f}',
                },
            )
        )
        self._publish_box()

    # --- outputs ---
    def _publish(self, decision) -> None:
        if decision.state != self._last_state:
            text = decision.state.name
            if decision.messages:
                text += ': ' + '; '.join(decision.messages)
            if decision.state <= SafetyState.LIMITED:
                self.get_logger().info(f'safety state {text}')
            else:
                self.get_logger().warning(f'safety state {text}')
            self._last_state = decision.state
        key = (decision.state, decision.reasons)
        if key != self._last_status_key:
            # the limiter re-anchors on a refusal: tell it now, not at the next period
            self._last_status_key = key
            self._publish_status(self._now())
        if decision.pose is None:
            return  # no reference pose yet: nothing to hold, nothing may move
        out = EndEffectorTarget()
        out.header.stamp = self.get_clock().now().to_msg()
        out.header.frame_id = self.p['base_frame']
        out.pose = matrix_to_pose(decision.pose)
        out.gripper = float(decision.gripper)
        out.hold = bool(decision.hold)
        self._safe_pub.publish(out)
        now = self._now()
        if decision.state != self._marker_state or now - self._marker_time >= _MARKER_PERIOD:
            self._marker_state, self._marker_time = decision.state, now
            self._publish_target_markers(decision)

    def _publish_status(self, now: float) -> None:
        s = self.monitor.status(now)
        msg = SafetyStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.p['base_frame']
        msg.state = int(s.state)
        msg.reasons = list(s.reasons)
        msg.messages = list(s.messages)
        msg.estop_latched = bool(s.estop_latched)
        msg.passed, msg.clipped, msg.rejected = int(s.passed), int(s.clipped), int(s.rejected)
        msg.image_age, msg.joint_state_age, msg.command_age = (
            float(s.image_age),
            float(s.joint_state_age),
            float(s.command_age),
        )
        self._status_pub.publish(msg)

    def _marker(self, ns: str, kind: int) -> Marker:
        m = Marker()
        m.header.frame_id = self.p['base_frame']
        m.header.stamp = self.get_clock().now().to_msg()
        m.ns, m.id, m.type, m.action = ns, 0, kind, Marker.ADD
        m.pose.orientation.w = 1.0
        m.color.a = 1.0
        return m

    def _publish_target_markers(self, decision) -> None:
        r, g, b = _STATE_COLOUR[decision.state]
        target = self._marker('openvla_safe_target', Marker.SPHERE)
        target.pose = matrix_to_pose(decision.pose)
        target.scale.x = target.scale.y = target.scale.z = 0.02
        target.color.r, target.color.g, target.color.b = r, g, b
        text = self._marker('openvla_safety_state', Marker.TEXT_VIEW_FACING)
        hi = self.config.workspace_high
        text.pose.position.x, text.pose.position.y, text.pose.position.z = hi[0], 0.0, hi[2] + 0.05
        text.scale.z = 0.03
        text.color.r, text.color.g, text.color.b = r, g, b
        text.text = decision.state.name + (f' {decision.reasons[0]}' if decision.reasons else '')
        self._marker_pub.publish(MarkerArray(markers=[target, text]))

    def _publish_box(self) -> None:
        lo, hi = self.config.workspace_low, self.config.workspace_high
        corners = [
            (x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])
        ]
        edges = [
            (a, b)
            for a in range(8)
            for b in range(a + 1, 8)
            if sum(corners[a][i] != corners[b][i] for i in range(3)) == 1
        ]
        box = self._marker('openvla_workspace', Marker.LINE_LIST)
        box.scale.x = 0.003
        box.color.r, box.color.g, box.color.b = 0.6, 0.6, 0.6
        box.points = [
            Point(x=float(c[0]), y=float(c[1]), z=float(c[2]))
            for a, b in edges
            for c in (corners[a], corners[b])
        ]
        self._marker_pub.publish(MarkerArray(markers=[box]))


def main(args: list[str] | None = None) -> int:
    return run_node(SafetyMonitorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
