"""scripted_policy: a scripted pick-and-place expert that speaks the policy's language.

It reads the simulator's true object poses, plans grasp and place motions
(``openvla_ros.sim.expert.ScriptedExpert``) and publishes ``ActionChunk``s of ``bridge_orig``
deltas on the same topic as the model, so its actions go through the rate limiter, the safety
monitor, IK and the adapter like any other policy's. It needs ``sim:=true`` (true poses exist only
there).

By default (``plan_from`` 'target') it plans open loop on its own integrated target, which the
deltas reach exactly; the arm follows that target about a step behind (servo lag), so a frame
shows the arm where the target was, not where it is. With ``plan_from`` 'measured' it plans each
tick on the measured pose (forward kinematics of the joint states), a share ``gain`` of the way
per tick: its labels are then a function of what the camera shows, which is what a policy that
sees only the camera can learn (``openvla-ros learn`` records with it).

With ``noise_translation`` / ``noise_rotation`` > 0 it injects DART-style noise: on a share
``noise_probability`` of the ticks the *executed* action gets Gaussian noise, while the expert
keeps planning from the perturbed target, so the arm visits the states a learner's errors lead
to and the expert labels them. The clean labels go out on ``/openvla/expert_action`` (an
``ActionChunk`` each tick) for ``openvla-ros record`` / ``learn`` (``label_topic``).

Planned on the measured pose, the expert grasps again when the object is not in its hand. With
``miss_probability`` > 0, on that share of instructions it approaches the object as always, then
descends ``miss_distance`` beside it on purpose and closes there, then recovers: a learner sees
its own missed grasps and the way back. The ticks of that descent and closing publish no label
(they are not to be learned).
"""

from __future__ import annotations

from collections import deque
import math

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from openvla_ros.control import apply_delta
from openvla_ros.control.kinematics import get_kinematics, KNOWN_ARMS
from openvla_ros.msg import ActionChunk, EndEffectorTarget, PolicyStatus
from openvla_ros.msgio.topics import (
    ACTION_CHUNK,
    EE_TARGET,
    EXPERT_ACTION,
    INSTRUCTION,
    NODE_JOINT_STATES,
    OBJECT_POSES,
    POLICY_STATUS,
)
from openvla_ros.nodes._common import declare_params, Param, run_node, stamp_to_sec
from openvla_ros.nodes._conversions import InvalidPoseError, pose_to_matrix

PARAMS = (
    Param('robot', 'wx250s', 'Robot of the task.', choices=KNOWN_ARMS),
    Param('task', 'carrot_on_plate', 'Simulator task the expert solves.'),
    Param('policy_rate', 5.0, 'Action rate [Hz]; chunk dt = 1/rate.', low=0.1, high=100.0),
    Param('chunk_size', 1, 'Actions per chunk.', low=1, high=50),
    Param('base_frame', 'base_link', 'frame_id of the chunks.'),
    Param(
        'place_offset',
        [0.0, 0.0, 0.0],
        'xyz added to the place target [m]; non-zero makes a deliberately wrong expert (tests).',
    ),
    Param(
        'noise_translation',
        0.0,
        'DART noise: std of executed dxyz [m] (labels stay clean).',
        low=0.0,
        high=0.05,
    ),
    Param(
        'noise_rotation',
        0.0,
        'DART noise: std of executed droll/dpitch/dyaw [rad].',
        low=0.0,
        high=0.25,
    ),
    Param(
        'noise_probability',
        0.5,
        'Share of ticks whose executed action is perturbed.',
        low=0.0,
        high=1.0,
    ),
    Param(
        'noise_seed',
        0,
        'Seed of the DART noise (and of the deliberate misses).',
        low=0,
        high=2**31 - 1,
    ),
    Param(
        'miss_probability',
        0.0,
        'Share of instructions whose first grasp descends beside the object on purpose, then '
        "recovers (needs plan_from 'measured'); that descent publishes no label.",
        low=0.0,
        high=1.0,
    ),
    Param(
        'miss_distance',
        [0.025, 0.04],
        'Range [m] of the deliberate miss: horizontal distance of the grasp from the object, '
        'in a uniformly drawn direction.',
    ),
    Param(
        'max_translation',
        0.05,
        'Largest translation per tick and axis [m] (Bridge bound 0.05; the WidowX '
        "profile's limiter moves at most 0.2 m/s, 0.04 m per 5 Hz tick).",
        low=0.001,
        high=0.05,
    ),
    Param(
        'max_rotation',
        0.15,
        'Largest rotation per tick [rad] (Bridge bound 0.25 per Euler angle).',
        low=0.01,
        high=0.25,
    ),
    Param(
        'plan_from',
        'target',
        "'target': plan open loop on the commanded target (exact, but the arm and so the "
        "camera lag it by about a step); 'measured': plan each tick on the measured pose "
        '(forward kinematics of joint_states), as a policy that sees only the camera must.',
        choices=('target', 'measured'),
    ),
    Param(
        'gain',
        0.4,
        "plan_from 'measured': share of the remaining way asked for per tick (the arm lags "
        'the target by about a tick; 1 would overshoot).',
        low=0.05,
        high=1.0,
    ),
    Param(
        'settle',
        [0.006, 0.05],
        "plan_from 'measured': [m, rad] within which a measured pose has reached a waypoint.",
    ),
)

#: Clean expert labels (one ActionChunk per tick), read by `RecordConfig.label_topic`.
LABEL_TOPIC = EXPERT_ACTION


# [m] a settled limiter this far from the expert's integrated target means actions were dropped
REPLAN_DISTANCE = 0.01
MAX_REPLANS = 3


class ScriptedPolicyNode(Node):
    """Publishes the expert's chunks while an instruction is active."""

    def __init__(self, *, node_name: str = 'scripted_policy', **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        self.p = declare_params(self, PARAMS)
        from openvla_ros.sim.expert import ScriptedExpert  # noqa: PLC0415 - pulls in mujoco

        self.expert = ScriptedExpert(
            self.p['task'],
            self.p['robot'],
            place_offset=tuple(self.p['place_offset']),
            max_translation=self.p['max_translation'],
            max_rotation=self.p['max_rotation'],
            **self._feedback_settings(),
        )
        self._measured = self.p['plan_from'] == 'measured'
        self._kinematics = get_kinematics(self.p['robot']) if self._measured else None
        # (stamp [s], arm joint positions) of the latest joint states (plan_from 'measured')
        self._joint_history: deque[tuple[float, np.ndarray]] = deque(maxlen=16)
        # (stamp [s], poses) of the latest object-pose messages; a tick plans on the newest one
        # stamped before it (see _objects)
        self._object_history: deque[tuple[float, dict[str, np.ndarray]]] = deque(maxlen=8)
        self._commanded: np.ndarray | None = None  # latest limiter output (start of the plan)
        self._target: np.ndarray | None = None  # the integrated goal the deltas lead to
        self._instruction = ''
        self._count = 0
        self._settled = False  # the limiter holds: its queue is empty and it reached its goal
        self._replans = 0

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(MarkerArray, OBJECT_POSES, self.on_object_poses, 10)
        self.create_subscription(String, INSTRUCTION, self.on_instruction, reliable)
        if self._measured:
            self.create_subscription(JointState, NODE_JOINT_STATES, self.on_joint_states, 10)
        self.create_subscription(EndEffectorTarget, EE_TARGET, self.on_ee_target, reliable)
        self._chunk_pub = self.create_publisher(ActionChunk, ACTION_CHUNK, reliable)
        self._label_pub = self.create_publisher(ActionChunk, LABEL_TOPIC, reliable)
        self._rng = np.random.default_rng(int(self.p['noise_seed']))
        # its own stream: the DART noise of a seed stays what it was without misses
        self._miss_rng = np.random.default_rng([int(self.p['noise_seed']), 1])
        self._miss_range = self._check_miss()
        self._status_pub = self.create_publisher(PolicyStatus, POLICY_STATUS, reliable)
        self.create_timer(1.0 / self.p['policy_rate'], self.on_policy_timer)

    def _check_miss(self) -> tuple[float, float]:
        lo, hi = (float(v) for v in self.p['miss_distance'])
        if not 0.0 <= lo <= hi <= 0.1:
            raise ValueError(
                f'miss_distance must be [lo, hi] with 0 <= lo <= hi <= 0.1 m, got '
                f'{self.p["miss_distance"]!r}'
            )
        if self.p['miss_probability'] > 0 and not self.expert.regrasp:
            raise ValueError(
                "miss_probability > 0 needs plan_from 'measured' (the expert "
                'recovers from a miss only on the measured pose)'
            )
        return lo, hi

    def _maybe_miss(self) -> None:
        """Order a deliberate miss of the next grasp on a share ``miss_probability`` of plans."""
        if (
            self.p['miss_probability'] <= 0
            or self._miss_rng.random() >= self.p['miss_probability']
        ):
            return
        angle = self._miss_rng.uniform(0.0, 2 * math.pi)
        radius = self._miss_rng.uniform(*self._miss_range)
        self.expert.miss_next_grasp((radius * math.cos(angle), radius * math.sin(angle)))
        self.get_logger().info(f'this grasp misses on purpose by {radius:.3f} m (then recovers)')

    def on_object_poses(self, msg: MarkerArray) -> None:
        try:
            objects = {m.text: pose_to_matrix(m.pose) for m in msg.markers if m.text}
        except InvalidPoseError:
            return  # the simulator never sends one; keep the last complete set of objects
        if objects:
            self._object_history.append((stamp_to_sec(msg.markers[0].header.stamp), objects))

    def _feedback_settings(self) -> dict[str, object]:
        if self.p['plan_from'] != 'measured':
            return {}
        settle = [float(v) for v in self.p['settle']]
        if len(settle) != 2:
            raise ValueError(f'settle must be [m, rad], got {settle!r}')
        return {'gain': self.p['gain'], 'settle': (settle[0], settle[1])}

    def on_joint_states(self, msg: JointState) -> None:
        names = list(msg.name)
        try:
            q = np.array([msg.position[names.index(n)] for n in self._kinematics.joint_names])
        except (ValueError, IndexError):
            return  # another arm's or the gripper's states
        if np.all(np.isfinite(q)):
            self._joint_history.append((stamp_to_sec(msg.header.stamp), q))

    @property
    def _measured_pose(self) -> np.ndarray | None:
        """Forward kinematics of the newest joint states stamped before this instant (the
        same rule as ``_objects``, for the same reason)."""
        q = self._newest_before_now(self._joint_history)
        return None if q is None else self._kinematics.fk(q)

    def _newest_before_now(self, history: deque) -> object | None:
        """The newest value of ``(stamp, value)`` pairs stamped before this instant."""
        now = self.get_clock().now().nanoseconds * 1e-9
        return next((value for t, value in reversed(history) if t < now - 1e-6), None)

    @property
    def _objects(self) -> dict[str, np.ndarray]:
        """The newest object poses stamped before this instant ({} if none).

        The simulator publishes poses at the instant of a policy tick too, and whether those or
        the previous ones were received first was a race (a settling block then moved the plan
        by a fraction of a millimetre, run to run). Poses stamped earlier have arrived in every
        run: the simulator's lockstep held the clock for the ticks in between.
        """
        return self._newest_before_now(self._object_history) or {}

    def on_ee_target(self, msg: EndEffectorTarget) -> None:
        try:
            self._commanded = pose_to_matrix(msg.pose)
        except InvalidPoseError:
            return  # the limiter never sends one; keep planning from the last good target
        self._settled = bool(msg.hold)

    def on_instruction(self, msg: String) -> None:
        text = msg.data.strip()
        if text == self._instruction:
            return
        self._instruction = text
        self._target = None  # (re)plan from the commanded pose at the next tick
        self._replans = 0
        if text and text != self.expert.task.instruction:
            self.get_logger().warning(
                f"instruction {text!r} differs from the task's "
                f'{self.expert.task.instruction!r}; the expert does its task anyway'
            )
        self.get_logger().info(f'instruction: {text!r}' if text else 'empty instruction: idle')

    def on_policy_timer(self) -> None:
        objects = self._objects
        if not self._instruction or not objects or self._commanded is None:
            self._publish_status('waiting for ' + ', '.join(self._missing()))
            return
        measured = self._measured_pose if self._measured else None
        if self._measured and measured is None:
            self._publish_status('waiting for joint states')
            return
        if self._target is not None and not self._measured and self._lost_track():
            self._target = None
        if self._target is None:
            self._target = self._commanded.copy()
            self.expert.reset(objects, self._target if measured is None else measured)
            self._maybe_miss()
        dt = 1.0 / self.p['policy_rate']
        labels = self.expert.next_chunk(
            objects, self._target if measured is None else measured, self.p['chunk_size']
        )
        actions = self._perturb(labels)
        for action in actions:
            self._target = apply_delta(self._target, action)
        stamp = self.get_clock().now().to_msg()
        deliberate = self.expert.deliberate
        if not deliberate:  # a deliberately wrong action is no label
            self._label_pub.publish(self._chunk(labels, dt, stamp))
        self._chunk_pub.publish(self._chunk(actions, dt, stamp))
        self._count += 1
        self._publish_status(
            f'phase {self.expert.phase}' + (' (missing on purpose)' if deliberate else '')
        )

    def _perturb(self, labels: np.ndarray) -> np.ndarray:
        """Executed actions: the labels plus DART noise on some ticks, within the expert's
        bounds (the gripper is never perturbed)."""
        sigma_t, sigma_r = self.p['noise_translation'], self.p['noise_rotation']
        if (sigma_t <= 0 and sigma_r <= 0) or self._rng.random() >= self.p['noise_probability']:
            return labels
        from openvla_ros.sim.expert import MAX_DRPY, MAX_DXYZ  # noqa: PLC0415

        noisy = labels.copy()
        count = labels.shape[0]
        noisy[:, :3] += self._rng.normal(0.0, sigma_t, (count, 3))
        noisy[:, 3:6] += self._rng.normal(0.0, sigma_r, (count, 3))
        noisy[:, :3] = np.clip(noisy[:, :3], -MAX_DXYZ, MAX_DXYZ)
        noisy[:, 3:6] = np.clip(noisy[:, 3:6], -MAX_DRPY, MAX_DRPY)
        return noisy

    def _chunk(self, actions: np.ndarray, dt: float, stamp) -> ActionChunk:
        chunk = ActionChunk()
        chunk.header.stamp = stamp
        chunk.header.frame_id = self.p['base_frame']
        chunk.instruction = self._instruction
        chunk.model = 'scripted_expert'
        chunk.unnorm_key = ''
        chunk.action_space = 'bridge_orig'
        chunk.dt = dt
        chunk.num_actions, chunk.action_dim = (int(n) for n in actions.shape)
        chunk.actions = actions.ravel().tolist()
        chunk.gripper_convention = ActionChunk.GRIPPER_CONVENTION_OPEN_IS_ONE
        chunk.inference_latency = 0.0
        return chunk

    def _lost_track(self) -> bool:
        """The limiter settled away from where the expert's deltas lead: a safety hold dropped
        its queue or the monitor refused a target. The open-loop plan is then void: re-plan from
        the commanded pose (at most MAX_REPLANS times per instruction)."""
        if not self._settled or self._replans >= MAX_REPLANS:
            return False
        off = float(np.linalg.norm(self._commanded[:3, 3] - self._target[:3, 3]))
        if off <= REPLAN_DISTANCE:
            return False
        self._replans += 1
        self.get_logger().warning(
            f'the arm settled {off:.3f} m from the plan (actions dropped by the safety chain); '
            f're-planning from the commanded pose ({self._replans}/{MAX_REPLANS})'
        )
        return True

    def _missing(self) -> list[str]:
        missing = []
        if not self._instruction:
            missing.append('an instruction')
        if not self._objects:
            missing.append('object poses')
        if self._commanded is None:
            missing.append('the commanded end-effector pose')
        return missing

    def _publish_status(self, message: str) -> None:
        s = PolicyStatus()
        s.header.stamp = self.get_clock().now().to_msg()
        s.state = PolicyStatus.STATE_RUNNING if self._instruction else PolicyStatus.STATE_IDLE
        s.model = 'scripted_expert'
        s.backend = 'scripted'
        s.instruction = self._instruction
        s.message = message
        s.predictions = self._count
        s.latency_p50 = s.latency_p90 = s.rate_hz = math.nan
        self._status_pub.publish(s)

    @property
    def phase(self) -> str:
        return self.expert.phase


def main(args: list[str] | None = None) -> int:
    return run_node(ScriptedPolicyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
