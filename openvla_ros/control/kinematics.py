"""Forward and inverse kinematics of the supported arms (WidowX 250 6DOF, Franka Panda and FR3).

Both arm families are written as space-frame products of exponentials (PoE): the WidowX from the
Interbotix screw axes and home pose, the Franka arms by converting Franka's published modified-DH
table into screw axes at q = 0. One PoE code path then serves every arm.

Why hand-written and not Pinocchio, ikpy or modern_robotics: the chains are short fixed tables (6-7
revolute joints), the solver must respect joint limits and velocity limits and report *why* it
failed (which joint, which value, which limit), and it must run without extra binary dependencies
on the robot computer. The procedure follows the Interbotix Python API (modern_robotics
``IKinSpace``: Newton steps on the space Jacobian, tried from several seeds, solution rejected on a
joint-limit or velocity-limit violation), with two changes that make it safer: Levenberg-Marquardt
damping (Sugihara's lambda = |e|^2 + bias, robust near singularities and for the redundant 7-DoF
arms) and projection onto the joint limits every iteration. scipy is used for rotations where speed
does not matter.

The WidowX 250 6DOF (``wx250s``) has six arm joints, so full 6-D pose IK is well posed (a 5-DoF arm
such as the wx250 would need a position-plus-pitch IK instead; it is not supported here).

Every ``ok`` result is re-checked before it is returned: finite joints, inside the limits, FK of
the solution within tolerance of the target, and (when ``dt`` is given) no joint faster than its
limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import math

import numpy as np
from scipy.spatial.transform import Rotation

from openvla_ros.control.errors import UnknownNameError

__all__ = [
    'FRANKA_DH',
    'FRANKA_FLANGE_D',
    'FRANKA_HAND_TCP_D',
    'IK_INVALID_TARGET',
    'IK_JOINT_LIMIT',
    'IK_NON_FINITE',
    'IK_NO_CONVERGENCE',
    'IK_OK',
    'IK_VELOCITY_LIMIT',
    'KNOWN_ARMS',
    'ArmKinematics',
    'IKResult',
    'get_kinematics',
    'pose_error',
]

IK_OK = 'IK_OK'
IK_NO_CONVERGENCE = 'IK_NO_CONVERGENCE'
IK_JOINT_LIMIT = 'IK_JOINT_LIMIT'
IK_VELOCITY_LIMIT = 'IK_VELOCITY_LIMIT'
IK_NON_FINITE = 'IK_NON_FINITE'
IK_INVALID_TARGET = 'IK_INVALID_TARGET'

# Franka's published modified-DH table (a_{i-1} [m], d_i [m], alpha_{i-1} [rad]), joints 1..7.
FRANKA_DH: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
FRANKA_FLANGE_D = 0.107  # [m] joint 7 frame -> flange, along z
FRANKA_HAND_TCP_D = 0.1034  # [m] flange -> hand TCP, along z (and rotated -pi/4 about z)


def _skew(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def _exp_screw(screw: np.ndarray, theta: float) -> np.ndarray:
    """exp([S] theta) for a revolute screw S = (w, v) with |w| = 1 (Modern Robotics eq. 3.88)."""
    w = screw[:3]
    v = screw[3:]
    wx = _skew(w)
    wx2 = wx @ wx
    s = math.sin(theta)
    c = math.cos(theta)
    t = np.eye(4)
    t[:3, :3] = np.eye(3) + s * wx + (1.0 - c) * wx2
    t[:3, 3] = (theta * np.eye(3) + (1.0 - c) * wx + (theta - s) * wx2) @ v
    return t


def _rotation_log(r: np.ndarray) -> np.ndarray:
    """Rotation vector of a rotation matrix (fast path, scipy near pi)."""
    cos_angle = (np.trace(r) - 1.0) * 0.5
    cos_angle = min(1.0, max(-1.0, cos_angle))
    angle = math.acos(cos_angle)
    vee = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-6:
        return 0.5 * vee
    if angle < math.pi - 1e-3:
        return vee * (angle / (2.0 * math.sin(angle)))
    return Rotation.from_matrix(r).as_rotvec()


def pose_error(pose: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Position error [m] and orientation error [rad] (geodesic angle) between two poses (4, 4)."""
    p = np.asarray(pose, dtype=float)
    t = np.asarray(target, dtype=float)
    position_error = float(np.linalg.norm(t[:3, 3] - p[:3, 3]))
    orientation_error = float(np.linalg.norm(_rotation_log(t[:3, :3] @ p[:3, :3].T)))
    return position_error, orientation_error


@dataclass(frozen=True)
class IKResult:
    """Outcome of one IK solve.

    Attributes:
        ok: True only when ``q`` passed every check (limits, FK re-check, velocity).
        q: the joint positions [rad] when ok, else None.
        reason: code: IK_OK, IK_NO_CONVERGENCE, IK_JOINT_LIMIT, IK_VELOCITY_LIMIT, IK_NON_FINITE or
            IK_INVALID_TARGET.
        message: one sentence with the numbers (joint, value, limit, errors).
        iterations: Newton iterations spent over all seeds.
        position_error: [m] of the best candidate (NaN if none).
        orientation_error: [rad] of the best candidate (NaN if none).
    """

    ok: bool
    q: np.ndarray | None
    reason: str
    message: str
    iterations: int = 0
    position_error: float = math.nan
    orientation_error: float = math.nan


@dataclass
class _Attempt:
    q: np.ndarray
    converged: bool
    iterations: int
    position_error: float
    orientation_error: float


@dataclass
class ArmKinematics:
    """Kinematics and limits of one arm, as a space-frame product of exponentials.

    Attributes:
        name: arm name (``wx250s``, ``panda``, ``fr3``).
        joint_names: arm joint names in command order.
        lower: (n,) lower joint limits [rad].
        upper: (n,) upper joint limits [rad].
        max_velocity: (n,) joint velocity limits [rad/s].
        screws: (n, 6) space-frame screw axes (w, v) at q = 0.
        home: (4, 4) TCP pose at q = 0 (the PoE ``M``).
        tcp_offset: (4, 4) flange -> TCP transform (identity where the TCP is the last link).
        extra_seeds: IK seeds tried after the caller's seed (Interbotix: zeros, waist -/+120 deg).
        position_tolerance: [m] largest position error of an accepted IK solution.
        orientation_tolerance: [rad] largest orientation error of an accepted IK solution.
        max_iterations: Newton iterations per seed.
    """

    name: str
    joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    screws: np.ndarray
    home: np.ndarray
    tcp_offset: np.ndarray = field(default_factory=lambda: np.eye(4))
    extra_seeds: tuple[np.ndarray, ...] = ()
    position_tolerance: float = 1e-3
    orientation_tolerance: float = 1e-3
    max_iterations: int = 100

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        self.lower = np.asarray(self.lower, dtype=float)
        self.upper = np.asarray(self.upper, dtype=float)
        self.max_velocity = np.asarray(self.max_velocity, dtype=float)
        self.screws = np.asarray(self.screws, dtype=float)
        self.home = np.asarray(self.home, dtype=float)
        self.tcp_offset = np.asarray(self.tcp_offset, dtype=float)
        if self.lower.shape != (n,) or self.upper.shape != (n,):
            raise ValueError(f'{self.name}: limits must have {n} entries')
        if self.max_velocity.shape != (n,):
            raise ValueError(f'{self.name}: max_velocity must have {n} entries')
        if self.screws.shape != (n, 6):
            raise ValueError(f'{self.name}: screws must be ({n}, 6), got {self.screws.shape}')
        if np.any(self.lower >= self.upper):
            raise ValueError(f'{self.name}: every lower limit must be below its upper limit')
        self.extra_seeds = tuple(np.asarray(s, dtype=float) for s in self.extra_seeds)

    @property
    def dof(self) -> int:
        """Number of arm joints."""
        return len(self.joint_names)

    # ------------------------------------------------------------------ forward kinematics
    def _chain(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP pose and space Jacobian (6, n) with rows (w, v) at joint positions q."""
        n = self.dof
        jac = np.empty((6, n))
        t = np.eye(4)
        for i in range(n):
            screw = self.screws[i]
            r = t[:3, :3]
            w = r @ screw[:3]
            jac[:3, i] = w
            jac[3:, i] = r @ screw[3:] + np.cross(t[:3, 3], w)
            t = t @ _exp_screw(screw, float(q[i]))
        return t @ self.home, jac

    def _check_q(self, q: np.ndarray) -> np.ndarray:
        arr = np.asarray(q, dtype=float)
        if arr.shape != (self.dof,):
            raise ValueError(f'{self.name}: q must have shape ({self.dof},), got {arr.shape}')
        return arr

    def fk(self, q: Sequence[float] | np.ndarray) -> np.ndarray:
        """TCP pose (4, 4) in the base frame at joint positions ``q`` [rad].

        Raises:
            ValueError: ``q`` has the wrong shape.
        """
        arr = self._check_q(q)
        t = np.eye(4)
        for i in range(self.dof):
            t = t @ _exp_screw(self.screws[i], float(arr[i]))
        return t @ self.home

    def fk_flange(self, q: Sequence[float] | np.ndarray) -> np.ndarray:
        """Flange pose (4, 4): the TCP pose with ``tcp_offset`` removed.

        Raises:
            ValueError: ``q`` has the wrong shape.
        """
        return self.fk(q) @ np.linalg.inv(self.tcp_offset)

    def jacobian(self, q: Sequence[float] | np.ndarray) -> np.ndarray:
        """Space Jacobian (6, n), rows (w, v), at ``q``.

        Raises:
            ValueError: ``q`` has the wrong shape.
        """
        return self._chain(self._check_q(q))[1]

    def within_limits(self, q: np.ndarray, *, tolerance: float = 1e-9) -> bool:
        """Whether every joint of ``q`` is finite and inside its limits."""
        arr = np.asarray(q, dtype=float)
        if arr.shape != (self.dof,):
            return False
        if not np.all(np.isfinite(arr)):
            return False
        if np.any(arr < self.lower - tolerance):
            return False
        if np.any(arr > self.upper + tolerance):
            return False
        return True

    # ------------------------------------------------------------------ inverse kinematics
    def _wrap(self, q: np.ndarray) -> np.ndarray:
        """Shift each joint by a multiple of 2*pi to within pi of the middle of its range."""
        centre = 0.5 * (self.lower + self.upper)
        return q - 2.0 * math.pi * np.round((q - centre) / (2.0 * math.pi))

    def _project(self, q: np.ndarray) -> np.ndarray:
        """Wrap, then clamp onto the joint limits."""
        return np.clip(self._wrap(q), self.lower, self.upper)

    def _solve(self, target: np.ndarray, seed: np.ndarray, *, constrained: bool,
               max_iterations: int) -> _Attempt:
        """Levenberg-Marquardt iterations on (position error, rotation-vector error)."""
        q = self._project(seed) if constrained else seed.copy()
        p_t = target[:3, 3]
        r_t = target[:3, :3]
        eye = np.eye(self.dof)
        pos_err = math.inf
        rot_err = math.inf
        it = 0
        for it in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
            pose, jac = self._chain(q)
            p = pose[:3, 3]
            e_p = p_t - p
            e_w = _rotation_log(r_t @ pose[:3, :3].T)
            pos_err = float(np.linalg.norm(e_p))
            rot_err = float(np.linalg.norm(e_w))
            small_p = pos_err < 0.01 * self.position_tolerance
            if small_p and rot_err < 0.01 * self.orientation_tolerance:
                return _Attempt(q, True, it, pos_err, rot_err)
            j_v = jac[3:] - _skew(p) @ jac[:3]
            j = np.vstack([j_v, jac[:3]])
            e = np.concatenate([e_p, e_w])
            damping = float(e @ e) + 1e-8
            dq = np.linalg.solve(j.T @ j + damping * eye, j.T @ e)
            biggest = float(np.max(np.abs(dq)))
            if biggest > 0.5:
                dq *= 0.5 / biggest
            q = q + dq
            if constrained:
                q = self._project(q)
            if not np.all(np.isfinite(q)):
                break
        pose = self.fk(q) if np.all(np.isfinite(q)) else None
        if pose is not None:
            pos_err, rot_err = pose_error(pose, target)
        converged = pos_err <= self.position_tolerance and rot_err <= self.orientation_tolerance
        return _Attempt(q, converged, it, pos_err, rot_err)

    def _joint_limit_violation(self, q: np.ndarray) -> str | None:
        for i in range(self.dof):
            if q[i] < self.lower[i]:
                return (f'{self.joint_names[i]} = {q[i]:.4f} rad is below its lower limit '
                        f'{self.lower[i]:.4f} rad')
            if q[i] > self.upper[i]:
                return (f'{self.joint_names[i]} = {q[i]:.4f} rad is above its upper limit '
                        f'{self.upper[i]:.4f} rad')
        return None

    def _velocity_violation(self, q: np.ndarray, seed: np.ndarray, dt: float) -> str | None:
        speed = np.abs(q - seed) / dt
        for i in range(self.dof):
            if speed[i] > self.max_velocity[i]:
                return (f'{self.joint_names[i]} would move {abs(q[i] - seed[i]):.4f} rad in '
                        f'{dt:.4f} s ({speed[i]:.3f} rad/s), above its limit '
                        f'{self.max_velocity[i]:.3f} rad/s')
        return None

    def _verify(self, q: np.ndarray, target: np.ndarray, seed: np.ndarray,
                dt: float | None) -> tuple[str, str]:
        """Final gate before ok: returns (IK_OK, '') or a failure (reason, message)."""
        if not np.all(np.isfinite(q)):
            return IK_NON_FINITE, 'the solver produced a non-finite joint position'
        violation = self._joint_limit_violation(q)
        if violation is not None:
            return IK_JOINT_LIMIT, violation
        position_error, orientation_error = pose_error(self.fk(q), target)
        if position_error > self.position_tolerance:
            return IK_NO_CONVERGENCE, (f'position error {position_error:.2e} m is above the '
                                       f'tolerance {self.position_tolerance:.1e} m')
        if orientation_error > self.orientation_tolerance:
            return IK_NO_CONVERGENCE, (f'orientation error {orientation_error:.2e} rad is above '
                                       f'the tolerance {self.orientation_tolerance:.1e} rad')
        if dt is not None:
            violation = self._velocity_violation(q, seed, dt)
            if violation is not None:
                return IK_VELOCITY_LIMIT, violation
        return IK_OK, ''

    def ik(self, target: np.ndarray, seed: Sequence[float] | np.ndarray, *,
           dt: float | None = None) -> IKResult:
        """Joint positions that put the TCP at ``target``, near ``seed``.

        Tries the seed (the current joints) first, then ``extra_seeds``; the first solution that
        passes every check wins.

        Args:
            target: (4, 4) desired TCP pose in the base frame.
            seed: (n,) current joint positions [rad].
            dt: [s] time to reach the solution; when given, a solution
                that needs a joint faster than
                its velocity limit (|q - seed| / dt) is rejected.

        Returns:
            An ``IKResult``; ``ok`` only for a solution re-checked against limits and target.

        Raises:
            ValueError: ``target`` is not (4, 4), ``seed`` has the wrong shape, or ``dt`` is not >
                0.
        """
        t = np.asarray(target, dtype=float)
        if t.shape != (4, 4):
            raise ValueError(f'target must be (4, 4), got {t.shape}')
        seed_arr = self._check_q(seed)
        if dt is not None and not (math.isfinite(dt) and dt > 0.0):
            raise ValueError(f'dt = {dt}: must be finite and > 0')
        if not np.all(np.isfinite(t)):
            return IKResult(False, None, IK_NON_FINITE, 'the target pose has a non-finite value')
        if not np.all(np.isfinite(seed_arr)):
            return IKResult(False, None, IK_NON_FINITE, 'the seed has a non-finite joint position')
        rot = t[:3, :3]
        orthogonality = float(np.max(np.abs(rot.T @ rot - np.eye(3))))
        if orthogonality > 1e-6 or np.linalg.det(rot) < 0.0 or np.any(t[3] != (0, 0, 0, 1)):
            return IKResult(False, None, IK_INVALID_TARGET,
                            f'the target is not a rigid transform '
                            f'(|R^T R - I| = {orthogonality:.1e})')

        seeds = (seed_arr,) + self.extra_seeds
        iterations = 0
        # (rank, reason, message, position error, orientation error) of the best failure so far
        failure: tuple[int, str, str, float, float] | None = None

        def note(rank: int, reason: str, message: str, ep: float, eo: float) -> None:
            nonlocal failure
            if failure is None or rank > failure[0]:
                failure = (rank, reason, message, ep, eo)

        for k, start in enumerate(seeds):
            attempt = self._solve(t, start, constrained=True, max_iterations=self.max_iterations)
            iterations += attempt.iterations
            if attempt.converged:
                reason, message = self._verify(attempt.q, t, seed_arr, dt)
                if reason == IK_OK:
                    return IKResult(True, attempt.q.copy(), IK_OK,
                                    f'solved from seed {k} in {iterations} iterations',
                                    iterations, attempt.position_error, attempt.orientation_error)
                note(3 if reason == IK_VELOCITY_LIMIT else 1, reason, message,
                     attempt.position_error, attempt.orientation_error)
                continue
            note(0, IK_NO_CONVERGENCE,
                 f'no solution within tolerance (best position error '
                 f'{attempt.position_error:.3e} m, '
                 f'orientation error {attempt.orientation_error:.3e} rad)',
                 attempt.position_error, attempt.orientation_error)
            if k == 0:
                # Would the arm reach the target if it ignored its limits? Then say which joint
                # blocks.
                free = self._solve(t, start, constrained=False,
                                   max_iterations=self.max_iterations // 2)
                iterations += free.iterations
                if free.converged and np.all(np.isfinite(free.q)):
                    wrapped = self._wrap(free.q)
                    reason, message = self._verify(wrapped, t, seed_arr, dt)
                    if reason == IK_OK:
                        return IKResult(True, wrapped, IK_OK,
                                        f'solved from seed {k} in {iterations} iterations',
                                        iterations, free.position_error, free.orientation_error)
                    violation = self._joint_limit_violation(wrapped)
                    if violation is not None:
                        note(2, IK_JOINT_LIMIT, f'the target needs {violation}',
                             free.position_error, free.orientation_error)
        assert failure is not None
        _, reason, message, ep, eo = failure
        return IKResult(False, None, reason, message, iterations, ep, eo)


def _franka_screws(tcp_offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Screw axes (7, 6) at q = 0 and home TCP pose from the modified-DH table."""
    t = np.eye(4)
    screws = []
    for a, d, alpha in FRANKA_DH:
        rx = np.eye(4)
        rx[1:3, 1:3] = [[math.cos(alpha), -math.sin(alpha)], [math.sin(alpha), math.cos(alpha)]]
        tx = np.eye(4)
        tx[0, 3] = a
        tz = np.eye(4)
        tz[2, 3] = d
        t = t @ rx @ tx @ tz
        w = t[:3, 2].copy()
        p = t[:3, 3].copy()
        screws.append(np.concatenate([w, -np.cross(w, p)]))
    flange = np.eye(4)
    flange[2, 3] = FRANKA_FLANGE_D
    return np.array(screws), t @ flange @ tcp_offset


def _franka_hand_tcp() -> np.ndarray:
    c = math.cos(-math.pi / 4)
    s = math.sin(-math.pi / 4)
    offset = np.eye(4)
    offset[:2, :2] = [[c, -s], [s, c]]
    offset[2, 3] = FRANKA_HAND_TCP_D
    return offset


_FRANKA_READY = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])
_DROID_RESET = np.array([0.0, -math.pi / 5, 0.0, -4 * math.pi / 5, 0.0, 3 * math.pi / 5, 0.0])


def _wx250s() -> ArmKinematics:
    deg = math.pi / 180.0
    waist_seed_low = np.zeros(6)
    waist_seed_low[0] = -120 * deg
    waist_seed_high = np.zeros(6)
    waist_seed_high[0] = 120 * deg
    return ArmKinematics(
        name='wx250s',
        joint_names=('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_angle', 'wrist_rotate'),
        lower=np.array([-math.pi, -108 * deg, -123 * deg, -math.pi, -100 * deg, -math.pi]),
        upper=np.array([math.pi, 114 * deg, 92 * deg, math.pi, 123 * deg, math.pi]),
        max_velocity=np.full(6, math.pi),
        screws=np.array([
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, -0.11065, 0.0, 0.0],
            [0.0, 1.0, 0.0, -0.36065, 0.0, 0.04975],
            [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],
            [0.0, 1.0, 0.0, -0.36065, 0.0, 0.29975],
            [1.0, 0.0, 0.0, 0.0, 0.36065, 0.0],
        ]),
        home=np.array([
            [1.0, 0.0, 0.0, 0.458325],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.36065],
            [0.0, 0.0, 0.0, 1.0],
        ]),
        extra_seeds=(np.zeros(6), waist_seed_low, waist_seed_high),
    )


def _franka(name: str) -> ArmKinematics:
    tcp = _franka_hand_tcp()
    screws, home = _franka_screws(tcp)
    if name == 'panda':
        lower = [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973]
        upper = [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973]
        velocity = [2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61]
    else:
        # Franka docs, "Limits for Franka Research 3" (position limits; velocity: the caps of the
        # position-dependent limits).
        lower = [-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159]
        upper = [2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159]
        velocity = [2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26]
    return ArmKinematics(
        name=name,
        joint_names=tuple(f'{name}_joint{i}' for i in range(1, 8)),
        lower=np.array(lower),
        upper=np.array(upper),
        max_velocity=np.array(velocity),
        screws=screws,
        home=home,
        tcp_offset=tcp,
        extra_seeds=(_FRANKA_READY.copy(), _DROID_RESET.copy()),
    )


_FACTORIES = {'fr3': lambda: _franka('fr3'), 'panda': lambda: _franka('panda'), 'wx250s': _wx250s}
KNOWN_ARMS = tuple(sorted(_FACTORIES))


def get_kinematics(name: str) -> ArmKinematics:
    """Kinematics of a supported arm.

    Args:
        name: ``'wx250s'``, ``'panda'`` or ``'fr3'`` (the Franka TCP is the Franka Hand's TCP).

    Raises:
        UnknownNameError: (a ValueError) the name is not known; the message lists the known names.
    """
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownNameError(f'unknown arm {name!r}; known arms: {", ".join(KNOWN_ARMS)}')
    return factory()
