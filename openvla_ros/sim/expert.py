"""Scripted expert: plans a pick(-and-place) from true object poses and emits bridge_orig actions.

Phases: approach (above the object, gripper open, top-down grasp orientation) -> descend ->
close -> lift -> [carry (above the place target) -> lower -> release -> retreat] -> done.
Each action ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` is within the Bridge bounds
(|dxyz| <= 0.05 m, |drpy| <= 0.25 rad) and uses the shared delta convention of docs/design.md:
``p' = p + dxyz``, ``R' = Rotation.from_euler('xyz', drpy).as_matrix() @ R`` applied to the
previous *target*, so applying the emitted actions to ``current_target`` reaches the waypoints
exactly. Pure Python, no ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial.transform import Rotation

from openvla_ros.control.actions import apply_delta
from openvla_ros.control.kinematics import pose_error
from openvla_ros.sim.scene import object_spec
from openvla_ros.sim.tasks import get_task, Task

if TYPE_CHECKING:  # pragma: no cover
    from openvla_ros.sim.world import SimWorld

MAX_DXYZ = 0.05
MAX_DRPY = 0.25

# TCP orientation pointing the fingers straight down with the finger axis along base y (yaw 0):
# WidowX approaches along TCP +x, Franka along TCP +z.
_DOWN = {
    'wx250s': Rotation.from_euler('y', math.pi / 2).as_matrix(),
    'panda': Rotation.from_euler('x', math.pi).as_matrix(),
    'fr3': Rotation.from_euler('x', math.pi).as_matrix(),
}
# A measured pose that has come no closer than STALL_PROGRESS [m] to its waypoint for STALL_TICKS
# ticks, within STALL_DISTANCE [m] of it, has reached it (see ScriptedExpert._reached).
STALL_PROGRESS = 0.001
STALL_TICKS = 3
STALL_DISTANCE = 0.02
# how far the finger pads reach below the TCP; grasps keep the tips this much above the table
_TIP_BELOW_TCP = {'wx250s': 0.01, 'panda': 0.01, 'fr3': 0.01}
# yaw symmetry of the grasp for each object kind (a block can be grasped every 90 degrees)
_SYMMETRY = {'block': math.pi / 2, 'carrot': math.pi, 'spoon': math.pi}
# Once the fingers closed, the picked object's centre farther than IN_HAND_XY [m] from the TCP
# horizontally or IN_HAND_Z [m] vertically is not in the hand (the grasp missed, or it slipped):
# the expert opens and grasps again, as a person would (and as a real gripper's width would tell).
IN_HAND_XY = 0.02
IN_HAND_Z = 0.04
# the phases that carry the picked object
_HOLDING = ('lift', 'carry', 'lower')


def apply_action(target: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Apply one bridge_orig delta to a 4x4 target (the control core's convention)."""
    return apply_delta(target, action, 'bridge_orig')


def _wrap_near(angle: float, ref: float, period: float) -> float:
    """The angle equivalent to ``angle`` modulo ``period`` closest to ``ref``."""
    return ref + (angle - ref + period / 2) % period - period / 2


@dataclass
class _Phase:
    name: str
    gripper: float
    dwell: int = 0  # extra steps to wait once the waypoint is reached


class ScriptedExpert:
    """Pick-and-place expert for the sim tasks.

    Args:
        task: a ``Task`` or a task name.
        robot: robot name (used when ``task`` is a name).
        place_offset: xyz added to the place target (or to the lift goal); a non-zero value makes
            a deliberately wrong expert for negative tests.
        hover: height of the approach/retreat waypoint above the grasp/place pose [m].
        lift: how far the object is lifted after grasping [m].
        max_rotation: largest rotation per step [rad]; below the Bridge bound (0.25 per Euler
            angle) so that velocity-limited IK (pi rad/s at 5 Hz) can follow even where the
            WidowX wrist is badly conditioned (its start pose).
        max_translation: largest translation per step and axis [m] (Bridge bound 0.05).
        slow_translation: translation cap [m] while the remaining reorientation to the
            waypoint exceeds ``slow_below_angle`` [rad].
        gain: share of the remaining way to the waypoint asked for in one step (before the
            caps). 1 plans open loop on the commanded target, which the deltas reach exactly.
            Planned on the *measured* pose, which lags the commanded target by about a step,
            a full step swings about the waypoint; 0.3-0.4 settles on the simulated WidowX
            (0.5 still swings).
        settle: (translation [m], rotation [rad]) within which a waypoint counts as reached;
            (0, 0) asks for it exactly (open loop). A measured pose needs a tolerance.
        regrasp: planned on the measured pose (``settle`` > 0), when the object is not in the
            hand while it should be (a missed grasp, a slip), open and start again from the
            approach; ``regrasps`` counts it. Off, or open loop (whose target leads the arm by
            up to a step, so it cannot tell), the plan runs on regardless.

    Raises:
        ValueError: unknown task/robot or a malformed offset.
    """

    def __init__(
        self,
        task: Task | str,
        robot: str = 'wx250s',
        *,
        place_offset: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
        hover: float = 0.08,
        lift: float = 0.1,
        max_translation: float = MAX_DXYZ,
        max_rotation: float = 0.15,
        slow_translation: float = 0.02,
        slow_below_angle: float = 0.3,
        gain: float = 1.0,
        settle: tuple[float, float] = (0.0, 0.0),
        regrasp: bool = True,
    ) -> None:
        self.task = get_task(task, robot) if isinstance(task, str) else task
        self.robot = self.task.robot
        self.place_offset = np.asarray(place_offset, dtype=float).reshape(-1)
        if self.place_offset.shape != (3,) or not np.all(np.isfinite(self.place_offset)):
            raise ValueError(f'place_offset must be 3 finite numbers, got {place_offset!r}')
        self.hover = float(hover)
        self.lift = float(lift)
        self.max_rotation = float(max_rotation)
        self.max_translation = float(max_translation)
        self.slow_translation = float(slow_translation)
        self.slow_below_angle = float(slow_below_angle)
        if not 0.0 < self.max_translation <= MAX_DXYZ:
            raise ValueError(
                f'max_translation must be in (0, {MAX_DXYZ}], got {max_translation!r}'
            )
        if not 0.0 < self.max_rotation <= MAX_DRPY:
            raise ValueError(f'max_rotation must be in (0, {MAX_DRPY}], got {max_rotation!r}')
        self.gain = float(gain)
        if not 0.0 < self.gain <= 1.0:
            raise ValueError(f'gain must be in (0, 1], got {gain!r}')
        self.settle = (float(settle[0]), float(settle[1]))
        if not (min(self.settle) >= 0.0 and all(map(math.isfinite, self.settle))):
            raise ValueError(f'settle must be two finite numbers >= 0, got {settle!r}')
        names = ['approach', 'descend', 'close', 'lift']
        if self.task.place is not None:
            names += ['carry', 'lower', 'release', 'retreat']
        names.append('done')
        grip = {
            'approach': 1.0,
            'descend': 1.0,
            'close': 0.0,
            'lift': 0.0,
            'carry': 0.0,
            'lower': 0.0,
            'release': 1.0,
            'retreat': 1.0,
            'done': 1.0 if self.task.place is not None else 0.0,
        }
        dwell = {'close': 3, 'release': 2, 'descend': 1}
        self._phases = [_Phase(n, grip[n], dwell.get(n, 0)) for n in names]
        self._index = 0
        self._waypoint: np.ndarray | None = None
        self._dwell_left = 0
        self._closest, self._stalled = math.inf, 0  # progress toward the waypoint (settle)
        self._grasp_pose: np.ndarray | None = None
        self._in_hand = np.zeros(3)
        self._start: np.ndarray | None = None
        self.phase = 'approach'
        self.regrasp = bool(regrasp) and self.settle != (0.0, 0.0)
        self.regrasps = 0
        self._miss = np.zeros(3)  # offset of the next grasp (miss_next_grasp)

    @property
    def done(self) -> bool:
        """True once the plan is finished (then only zero motions are emitted)."""
        return self.phase == 'done'

    @property
    def deliberate(self) -> bool:
        """True while a grasp ordered to miss (``miss_next_grasp``) descends and closes beside
        the object: those actions are deliberately wrong, not labels to learn from. The approach
        before it goes to the true hover pose, a label like any other."""
        return bool(np.any(self._miss)) and self.phase in ('descend', 'close')

    def miss_next_grasp(self, offset: np.ndarray | tuple[float, float]) -> None:
        """Descend to the next grasp ``offset`` (horizontal xy, m) beside the object (from the
        true hover pose above it) and close there; with ``regrasp`` the expert then finds the
        object not in the hand and grasps again. This shows a learner the states after its own
        missed grasps and how to recover from them (DART noise alone is too small to miss a
        grasp).

        Raises:
            ValueError: not two finite numbers, or ``regrasp`` is off or open loop (nothing
                would recover).
        """
        xy = np.asarray(offset, dtype=float).reshape(-1)
        if xy.shape != (2,) or not np.all(np.isfinite(xy)):
            raise ValueError(f'miss offset must be two finite numbers [m], got {offset!r}')
        if not self.regrasp:
            raise ValueError(
                'a deliberate miss needs regrasp on the measured pose (settle > 0) to recover'
            )
        self._miss = np.array([xy[0], xy[1], 0.0])

    def reset(
        self, world_or_object_poses: SimWorld | dict[str, np.ndarray], start_target: np.ndarray
    ) -> None:
        """Start a new plan from the current object poses and the commanded EE target.

        Raises:
            ValueError: ``start_target`` is not a finite 4x4 matrix.
        """
        self._start = self._check_pose(start_target)
        self._index = 0
        self._waypoint = None
        self._grasp_pose = None
        self._dwell_left = 0
        self.phase = self._phases[0].name
        self.regrasps = 0
        self._miss = np.zeros(3)
        # object poses are read again in next_chunk; the argument is kept for API symmetry
        self._poses(world_or_object_poses)

    @staticmethod
    def _poses(src) -> dict[str, np.ndarray]:
        return src.object_poses() if hasattr(src, 'object_poses') else src

    @staticmethod
    def _check_pose(pose) -> np.ndarray:
        arr = np.asarray(pose, dtype=float)
        if arr.shape != (4, 4) or not np.all(np.isfinite(arr)):
            raise ValueError(f'expected a finite 4x4 pose, got {pose!r}')
        return arr

    # ------------------------------------------------------------------ planning
    def _grasp(self, poses: dict[str, np.ndarray], current: np.ndarray) -> np.ndarray:
        """Top-down grasp pose of the pick object, fingers closing across its long axis."""
        obj = poses[self.task.pick]
        spec = object_spec(self.task.pick, self.robot)
        down = _DOWN[self.robot]
        axis = obj[:3, 0]  # carrot and spoon are long along their body x axis
        if spec.kind == 'block':
            # pick the body axis that is most horizontal
            axis = obj[:3, 0] if abs(obj[2, 0]) < abs(obj[2, 1]) else obj[:3, 1]
        yaw = math.atan2(axis[1], axis[0])
        if self.robot == 'wx250s':
            ref = math.atan2(obj[1, 3], obj[0, 3])  # the waist direction: least wrist rotation
        else:
            rel = current[:3, :3] @ down.T
            ref = math.atan2(rel[1, 0], rel[0, 0])
        yaw = _wrap_near(yaw, ref, _SYMMETRY.get(spec.kind, math.pi))
        pose = np.eye(4)
        pose[:3, :3] = Rotation.from_euler('z', yaw).as_matrix() @ down
        z = max(obj[2, 3], spec.half_height * 0.5 + _TIP_BELOW_TCP[self.robot] + 0.003)
        z = max(z, _TIP_BELOW_TCP[self.robot] + 0.003)
        pose[:3, 3] = [obj[0, 3], obj[1, 3], z]
        return pose

    def _holds_object(self, poses: dict[str, np.ndarray], current: np.ndarray) -> bool:
        """Whether the picked object sits between the fingers (see ``IN_HAND_XY``)."""
        off = poses[self.task.pick][:3, 3] - current[:3, 3]
        return bool(np.hypot(off[0], off[1]) <= IN_HAND_XY and abs(off[2]) <= IN_HAND_Z)

    def _plan(self, name: str, poses: dict[str, np.ndarray], current: np.ndarray) -> np.ndarray:
        """Waypoint of phase ``name``, computed when the phase starts (latest poses)."""
        up = np.array([0.0, 0.0, 1.0])
        if name == 'approach':
            self._grasp_pose = self._grasp(poses, current)
            wp = self._grasp_pose.copy()
            wp[:3, 3] += self.hover * up
            return wp
        if name == 'descend':
            self._grasp_pose = self._grasp(poses, current)
            self._grasp_pose[:3, 3] += self._miss  # beside the object when a miss is ordered
            return self._grasp_pose.copy()
        if name == 'lift':
            wp = current.copy()
            wp[:3, 3] += self.lift * up
            if self.task.place is None:
                wp[:3, 3] += self.place_offset
            return wp
        if name == 'carry':
            goal = self.task.place_target(poses) + self.place_offset
            obj = poses[self.task.pick][:3, 3]
            # keep the object where it sits in the hand: move the TCP by (goal - object)
            self._in_hand = obj - current[:3, 3]
            wp = current.copy()
            wp[:3, 3] = goal - self._in_hand
            wp[2, 3] = max(current[2, 3], goal[2] - self._in_hand[2] + self.hover)
            return wp
        if name == 'lower':
            goal = self.task.place_target(poses) + self.place_offset
            wp = current.copy()
            wp[2, 3] = goal[2] - self._in_hand[2] + 0.012
            return wp
        if name == 'retreat':
            wp = current.copy()
            wp[:3, 3] += self.hover * up
            return wp
        return current.copy()  # close, release, done: hold the pose

    # ------------------------------------------------------------------ acting
    @staticmethod
    def delta_toward(
        current: np.ndarray,
        goal: np.ndarray,
        max_rotation: float = math.inf,
        max_translation: float = MAX_DXYZ,
    ) -> np.ndarray:
        """The largest in-bounds step [dx,dy,dz,droll,dpitch,dyaw] from ``current`` to ``goal``.

        Translation is scaled uniformly (straight line) to |d| <= ``max_translation`` per axis (at
        most the Bridge bound 0.05); rotation is a fraction of the geodesic of angle <=
        ``max_rotation`` whose xyz Euler angles are each within 0.25 rad.
        """
        dp = goal[:3, 3] - current[:3, 3]
        m = float(np.max(np.abs(dp)))
        if m > max_translation:
            dp = dp * (max_translation / m)
        rv = Rotation.from_matrix(goal[:3, :3] @ current[:3, :3].T).as_rotvec()
        angle = float(np.linalg.norm(rv))
        scale = 1.0 if angle <= max_rotation else max_rotation / angle
        while True:
            eul = Rotation.from_rotvec(rv * scale).as_euler('xyz')
            if np.max(np.abs(eul)) <= MAX_DRPY:
                break
            scale *= 0.9
        return np.concatenate([dp, eul])

    def _translation_cap(self, current: np.ndarray, goal: np.ndarray) -> float:
        """Translate slowly while a large reorientation is still to come.

        The WidowX's start pose (gripper pitched 30 degrees, yaw 0, waist turned) is badly
        conditioned: full-speed moves there ask the wrist for more than pi rad/s at 5 Hz. Turning
        the gripper towards top-down first leaves the arm well conditioned for fast moves.
        """
        angle = Rotation.from_matrix(goal[:3, :3] @ current[:3, :3].T).magnitude()
        if angle > self.slow_below_angle:
            return min(self.max_translation, self.slow_translation)
        return self.max_translation

    def _toward(self, current: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The pose ``gain`` of the way from ``current`` to ``goal`` (``goal`` at gain 1)."""
        if self.gain >= 1.0:
            return goal
        out = goal.copy()
        out[:3, 3] = current[:3, 3] + self.gain * (goal[:3, 3] - current[:3, 3])
        turn = Rotation.from_matrix(goal[:3, :3] @ current[:3, :3].T).as_rotvec()
        out[:3, :3] = Rotation.from_rotvec(self.gain * turn).as_matrix() @ current[:3, :3]
        return out

    def _reached(self, current: np.ndarray, goal: np.ndarray, delta: np.ndarray) -> bool:
        """At the waypoint: exactly (open loop), or within ``settle`` of it, or stalled
        within ``STALL_DISTANCE`` of it for ``STALL_TICKS`` ticks: the fingers rest on the table
        or the object there, and a measured pose gets no closer however far the target goes."""
        if self.settle == (0.0, 0.0):
            return bool(np.max(np.abs(delta)) < 1e-6)
        off, turn = pose_error(current, goal)
        if off < self._closest - STALL_PROGRESS:
            self._closest, self._stalled = off, 0
        else:
            self._stalled += 1
        stalled = self._stalled >= STALL_TICKS and off <= STALL_DISTANCE
        return (off <= self.settle[0] or stalled) and turn <= self.settle[1]

    def _step(self, poses: dict[str, np.ndarray], current: np.ndarray) -> np.ndarray:
        for _ in range(len(self._phases) + 2):
            phase = self._phases[self._index]
            if self.regrasp and phase.name in _HOLDING and not self._holds_object(poses, current):
                self._index, self._waypoint = 0, None  # open, and from the approach again
                self.regrasps += 1
                continue
            if self._waypoint is None:
                self._waypoint = self._plan(phase.name, poses, current)
                self._dwell_left = phase.dwell
                self._closest, self._stalled = math.inf, 0
            delta = self.delta_toward(
                current,
                self._toward(current, self._waypoint),
                self.max_rotation,
                self._translation_cap(current, self._waypoint),
            )
            at_goal = self._reached(current, self._waypoint, delta)
            if not at_goal or phase.name == 'done':
                break
            if self._dwell_left > 0:
                self._dwell_left -= 1
                break
            if phase.name == 'close':
                self._miss = np.zeros(3)  # the ordered miss is done: the next grasp aims true
            self._index = min(self._index + 1, len(self._phases) - 1)
            self._waypoint = None
        self.phase = phase.name
        action = np.concatenate([delta, [phase.gripper]])
        action[:3] = np.clip(action[:3], -MAX_DXYZ, MAX_DXYZ)
        action[3:6] = np.clip(action[3:6], -MAX_DRPY, MAX_DRPY)
        return action

    def next_chunk(
        self,
        object_poses: dict[str, np.ndarray] | SimWorld,
        current_target: np.ndarray,
        chunk_size: int = 1,
    ) -> np.ndarray:
        """The next ``chunk_size`` actions (N, 7) starting from the commanded target.

        Later actions of a chunk are planned on the target the earlier ones lead to.

        Raises:
            ValueError: ``chunk_size`` < 1, a malformed target, or ``reset`` was not called.
        """
        if self._start is None:
            raise ValueError('call reset() before next_chunk()')
        if int(chunk_size) < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size!r}')
        poses = self._poses(object_poses)
        target = self._check_pose(current_target)
        out = np.zeros((int(chunk_size), 7))
        for i in range(int(chunk_size)):
            out[i] = self._step(poses, target)
            target = apply_action(target, out[i])
        return out
