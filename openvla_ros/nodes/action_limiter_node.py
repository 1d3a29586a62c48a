"""action_limiter: ActionChunks in, rate-, velocity-, acceleration- and jerk-limited EE targets
out.

Owns the queue of future actions (``openvla_ros.control.ActionRateLimiter``): each delta is applied
once, to the previous *target*, when its time comes; targets go out at ``control_rate``; with an
empty queue the last target is held.

No windup: each goal is clipped into the safe set (the shared ``workspace_*`` / ``orientation_*``
parameters the safety monitor enforces). Feedback from the monitor (``/openvla/safe_ee_target``
and ``/openvla/safety_status``, published at once on every change):

- a refusal (IK failure, joint or joint-velocity limit, a REJECT_* in reject mode): the refused
  motion is dropped and target and goal restart from the monitor's last safe target; the queue
  and new chunks go on (a reachable command moves the arm in the next period);
- a tracking-error hold: the same, from the measured pose;
- any other hold (camera, joint states, policy silent or faulty), ESTOP or FAULT: the queue is
  dropped and new chunks are refused until the monitor recovers;
- after an e-stop or fault is reset: re-anchor on the measured pose and the measured gripper.

An empty instruction drops the queue and brakes to a stop.
"""

from __future__ import annotations

from geometry_msgs.msg import Point
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from openvla_ros.adapters.gripper import measured_opening
from openvla_ros.control import (
    ActionChunkData,
    ActionRateLimiter,
    get_kinematics,
    LimiterConfig,
    SafetyState,
)
from openvla_ros.control.config import BOUNDS_KEYS, PoseBounds, SafetyConfig
from openvla_ros.control.kinematics import KNOWN_ARMS
from openvla_ros.msg import ActionChunk, EndEffectorTarget, SafetyStatus
from openvla_ros.msgio.topics import (
    ACTION_CHUNK,
    EE_TARGET,
    INSTRUCTION,
    MARKERS,
    NODE_JOINT_STATES,
    SAFE_EE_TARGET,
    SAFETY_STATUS,
)
from openvla_ros.nodes._common import (
    declare_dataclass,
    declare_params,
    Param,
    run_node,
    stamp_to_sec,
)
from openvla_ros.nodes._conversions import (
    InvalidPoseError,
    joint_positions,
    matrix_to_pose,
    pose_to_matrix,
)

PARAMS = (
    Param(
        'robot',
        'wx250s',
        'Kinematics model used to turn joint states into the start pose.',
        choices=KNOWN_ARMS,
    ),
    Param('base_frame', 'base_link', 'frame_id of the published targets (the arm base frame).'),
    Param('control_rate', 20.0, 'Rate of end-effector targets [Hz].', low=1.0, high=1000.0),
)
# Safety states in which pending actions must not keep moving the target.
_STOPPING = (SafetyState.HOLD, SafetyState.ESTOP, SafetyState.FAULT)
# Watchdog or start-up holds that do not call for dropping the plan (the limiter itself feeds
# commands).
_BENIGN_HOLDS = {'HALT_FOR_STALE_COMMANDS', 'HALT_FOR_NO_REFERENCE'}
# The monitor refused this target: drop the refused motion, re-anchor on its last safe target.
_REFUSALS = {
    'HALT_FOR_IK_FAILURE',
    'HALT_FOR_JOINT_LIMIT',
    'HALT_FOR_JOINT_VELOCITY_LIMIT',
    'REJECT_OUTSIDE_WORKSPACE',
    'REJECT_STEP_TRANSLATION',
    'REJECT_STEP_ROTATION',
    'REJECT_GRIPPER_RATE',
    'REJECT_ORIENTATION_LIMIT',
    'REJECT_FINAL_CHECK',
    'REJECT_NON_FINITE',
    'REJECT_INVALID_POSE',
}
# The arm is not where it was told to be: re-anchor on the measured pose.
_TRACKING = {'HALT_FOR_TRACKING_ERROR'}


class ActionLimiterNode(Node):
    """Paces action chunks into end-effector targets at the controller rate."""

    def __init__(self, *, node_name: str = 'action_limiter', **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        self.p = declare_params(self, PARAMS)
        values = declare_dataclass(self, 'limiter', LimiterConfig, exclude=('control_rate',))
        values['control_rate'] = self.p[
            'control_rate'
        ]  # one rate for limiter, monitor and adapter
        self.config = LimiterConfig.from_dict(values)
        # the safe set the goal stays in: the same parameters the safety monitor reads
        bounds = declare_dataclass(self, '', SafetyConfig, only=BOUNDS_KEYS)
        self.bounds = PoseBounds.from_dict(bounds)
        self.limiter = ActionRateLimiter(self.config, self.bounds)
        self.kinematics = get_kinematics(self.p['robot'])
        self._measured_q = None  # latest measured arm joints
        self._measured_pose = None  # their FK, computed on use (see _measured)
        self._plan_key = None  # what the last plan marker showed
        self._measured_gripper = None  # latest measured opening (None: no finger joint)
        self._resync = True  # re-anchor on the measured pose at the next period
        self._safety_state = SafetyState.OK
        self._stopped = False  # the monitor holds for a real reason: refuse chunks meanwhile
        self._safe_pose = None  # the monitor's last safe target (re-anchor point)
        self._safe_gripper = None
        self._rejected_seen = 0  # the monitor's rejected counter at the last re-anchor

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(
            ActionChunk, ACTION_CHUNK, self.on_action_chunk, reliable
        )
        self.create_subscription(JointState, NODE_JOINT_STATES, self.on_joint_states, 10)
        self.create_subscription(String, INSTRUCTION, self.on_instruction, reliable)
        self.create_subscription(
            SafetyStatus, SAFETY_STATUS, self.on_safety_status, reliable
        )
        self.create_subscription(
            EndEffectorTarget, SAFE_EE_TARGET, self.on_safe_target, reliable
        )
        self._target_pub = self.create_publisher(EndEffectorTarget, EE_TARGET, reliable)
        self._marker_pub = self.create_publisher(MarkerArray, MARKERS, 10)
        self.create_timer(self.config.period, self.on_control_timer)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_action_chunk(self, msg: ActionChunk) -> None:
        n, dim = int(msg.num_actions), int(msg.action_dim)
        if n < 1 or dim < 1 or len(msg.actions) != n * dim:
            self.get_logger().error(
                f'malformed ActionChunk: {len(msg.actions)} values for '
                f'num_actions={n} x action_dim={dim}; dropped'
            )
            return
        if not self.limiter.ready:
            self.get_logger().warning(
                'no joint states yet: chunk dropped', throttle_duration_sec=2.0
            )
            return
        if self._stopped:
            self.get_logger().warning(
                f'safety monitor {self._safety_state.name}: chunk dropped until it recovers',
                throttle_duration_sec=1.0,
            )
            return
        chunk = ActionChunkData(
            stamp=stamp_to_sec(msg.header.stamp),
            dt=float(msg.dt),
            actions=np.asarray(msg.actions, dtype=float).reshape(n, dim),
            action_space=msg.action_space or 'bridge_orig',
            gripper_convention=int(msg.gripper_convention),
            inference_latency=float(msg.inference_latency),
        )
        try:
            result = self.limiter.submit(chunk, self._now())
        except ValueError as exc:  # unknown action space, bad shape, non-finite values
            self.get_logger().error(f'chunk rejected: {exc}')
            return
        if not result.accepted:
            self.get_logger().warning(
                f'chunk dropped ({result.reason}): {result.message}', throttle_duration_sec=1.0
            )

    @property
    def _measured(self) -> np.ndarray | None:
        """FK of the latest joint state, computed when used (anchoring), not per message."""
        if self._measured_pose is None and self._measured_q is not None:
            self._measured_pose = self.kinematics.fk(self._measured_q)
        return self._measured_pose

    def on_joint_states(self, msg: JointState) -> None:
        q = joint_positions(msg, self.kinematics.joint_names)
        if q is not None and np.all(np.isfinite(q)):
            self._measured_q, self._measured_pose = q, None
        gripper = measured_opening(self.p['robot'], msg.name, msg.position)
        if gripper is not None:
            self._measured_gripper = gripper

    def on_safe_target(self, msg: EndEffectorTarget) -> None:
        try:
            pose = pose_to_matrix(msg.pose)
        except InvalidPoseError:
            return  # not a pose to re-anchor on (the monitor never sends one)
        if np.isfinite(msg.gripper):
            self._safe_pose = pose
            self._safe_gripper = float(msg.gripper)

    def on_instruction(self, msg: String) -> None:
        if not msg.data.strip():
            self.limiter.clear(self._now())
            self.get_logger().info('empty instruction: queue dropped, braking to a stop')

    def on_safety_status(self, msg: SafetyStatus) -> None:
        state = SafetyState(msg.state)
        reasons = set(msg.reasons)
        refused = state == SafetyState.HOLD and bool(reasons & (_REFUSALS | _TRACKING))
        # counters only grow; a different value (a restarted monitor too) is a new refusal
        if refused and int(msg.rejected) != self._rejected_seen and self.limiter.ready:
            self._rejected_seen = int(msg.rejected)
            self._reanchor(reasons)
        quiet = _BENIGN_HOLDS | _REFUSALS | _TRACKING
        stopping = state in _STOPPING and not reasons <= quiet
        if stopping and not self._stopped:
            self.get_logger().warning(
                f'safety monitor {state.name} ({", ".join(msg.reasons)}): queue dropped, '
                'new chunks refused until it recovers'
            )
        if stopping and self.limiter.ready and len(self.limiter.pending):
            self.limiter.clear(self._now())
        if not stopping and self._stopped:
            self.get_logger().info(f'safety monitor {state.name}: accepting chunks again')
        self._stopped = stopping
        if self._safety_state in (SafetyState.ESTOP, SafetyState.FAULT) and state not in (
            SafetyState.ESTOP,
            SafetyState.FAULT,
        ):
            self._resync = True  # after a reset, continue from where the arm really is
        self._safety_state = state

    def _reanchor(self, reasons: set[str]) -> None:
        """Drop the motion the monitor refused: restart from its last safe target (or, for a
        tracking error, from the measured pose), at rest."""
        if reasons & _TRACKING and self._measured is not None:
            pose, gripper, where = self._measured, None, 'the measured pose'
        elif self._safe_pose is not None:
            pose, gripper, where = self._safe_pose, self._safe_gripper, 'the last safe target'
        else:
            return
        if self.limiter.reanchor(pose, gripper):
            self.get_logger().info(
                f'monitor refused a target ({", ".join(sorted(reasons))}): re-anchored on '
                f'{where}', throttle_duration_sec=1.0,
            )

    def on_control_timer(self) -> None:
        if self._resync and self._measured is not None:
            # keep the world as it is: the measured gripper (an object held through an e-stop
            # stays held); open only when the joint states carry no finger joint
            gripper = 1.0 if self._measured_gripper is None else self._measured_gripper
            self.limiter.reset(self._measured, gripper)
            self._resync = False
            self.get_logger().info(
                f'target anchored on the measured end-effector pose (gripper {gripper:.2f})'
            )
        if not self.limiter.ready:
            return
        out = self.limiter.step(self._now())
        target = EndEffectorTarget()
        target.header.stamp = self.get_clock().now().to_msg()
        target.header.frame_id = self.p['base_frame']
        target.pose = matrix_to_pose(out.pose)
        target.gripper = float(np.clip(out.gripper, 0.0, 1.0))
        target.hold = bool(out.hold)
        self._target_pub.publish(target)
        pending = len(self.limiter.pending)
        key = (pending, self.limiter.goal[:3, 3].tobytes())
        if (out.consumed or pending == 0) and key != self._plan_key:
            self._plan_key = key  # an idle limiter re-sent the same line every period
            self._publish_plan()

    def _publish_plan(self) -> None:
        """The goals the queue will reach, as a line strip (rviz: the predicted motion)."""
        position = self.limiter.goal[:3, 3].copy()
        points = [position]
        for action in self.limiter.pending:  # metric deltas, already scaled and clipped
            position = position + np.asarray(action.delta[:3], dtype=float)
            points.append(position)
        marker = Marker()
        marker.header.frame_id = self.p['base_frame']
        marker.header.stamp = self.get_clock().now().to_msg()
        marker.ns, marker.id, marker.type = 'openvla_plan', 0, Marker.LINE_STRIP
        marker.action = Marker.ADD
        marker.scale.x = 0.005
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = 0.1, 0.6, 1.0, 1.0
        marker.pose.orientation.w = 1.0
        marker.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in points]
        self._marker_pub.publish(MarkerArray(markers=[marker]))


def main(args: list[str] | None = None) -> int:
    return run_node(ActionLimiterNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
