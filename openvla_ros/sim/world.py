"""SimWorld: a MuJoCo arm on a table with objects and a rendered camera (no ROS).

The thin ROS sim node calls this API: joint targets or a joint trajectory in, joint states,
TCP pose, camera images and object poses out. Commands go through a velocity-limited setpoint
(the joint velocity limit of the real arm), which a stiff position servo per joint then tracks.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import os

os.environ.setdefault('MUJOCO_GL', 'egl')

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from openvla_ros.sim.errors import SimError  # noqa: E402
from openvla_ros.sim.scene import build_scene_xml, robot_spec  # noqa: E402
from openvla_ros.sim.tasks import get_task, Task  # noqa: E402

DEFAULT_OBJECTS = {
    'wx250s': ('carrot', 'plate', 'red_block', 'green_block'),
    'panda': ('red_block', 'green_block', 'blue_block'),
    'fr3': ('red_block', 'green_block', 'blue_block'),
}


@dataclass
class JointStateData:
    """Arm joints then fingers, like a sensor_msgs/JointState (rad, rad/s, Nm; fingers in m, N)."""

    name: tuple[str, ...]
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the scene camera, enough for a sensor_msgs/CameraInfo.

    MuJoCo renders square pixels with a vertical field of view ``fovy_deg``, so
    ``fy = (height / 2) / tan(fovy / 2)``, ``fx = fy``, and the principal point is the image
    centre.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    frame_id: str
    fovy_deg: float

    @property
    def k(self) -> np.ndarray:
        """The 3x3 camera matrix K (row-major as in CameraInfo.k)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def _pose(pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = np.asarray(mat).reshape(3, 3)
    t[:3, 3] = pos
    return t


class SimWorld:
    """One simulated arm, table, objects and camera.

    Args:
        robot: 'wx250s', 'panda' or 'fr3'.
        seed: seed of the first episode (object placement).
        task: optional task name (see ``openvla_ros.sim.tasks``); it chooses the objects and
            places them at reset.
        image_size: (height, width) of rendered images.
        physics_dt: physics timestep [s].
        shadows: render shadows (about twice the render time; off by default).

    Raises:
        ValueError: unknown robot/task or bad sizes.
    """

    def __init__(
        self,
        robot: str = 'wx250s',
        *,
        seed: int = 0,
        task: str | None = None,
        image_size: tuple[int, int] = (480, 640),
        physics_dt: float = 0.002,
        shadows: bool = False,
    ) -> None:
        self.spec = robot_spec(robot)
        self.robot = robot
        self.task: Task | None = None
        if task is not None:
            self.task = get_task(task, robot)
            objects = self.task.objects
        else:
            objects = DEFAULT_OBJECTS[robot]
        self.objects: tuple[str, ...] = tuple(objects)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.physics_dt = float(physics_dt)
        xml = build_scene_xml(robot, self.objects, self.image_size, self.physics_dt, shadows)
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self.joint_names: tuple[str, ...] = self.spec.joint_names
        self.finger_joint_names: tuple[str, ...] = self.spec.finger_joint_names
        m = self.model
        self._arm_qadr = np.array([m.joint(n).qposadr[0] for n in self.joint_names])
        self._arm_dadr = np.array([m.joint(n).dofadr[0] for n in self.joint_names])
        self._arm_act = np.array([m.actuator(n).id for n in self.joint_names])
        self._fing_qadr = np.array([m.joint(n).qposadr[0] for n in self.finger_joint_names])
        self._fing_dadr = np.array([m.joint(n).dofadr[0] for n in self.finger_joint_names])
        self._grip_act = m.actuator('gripper').id
        self._site = m.site(self.spec.tcp_site).id
        self._cam = m.camera(self.spec.camera.name).id
        self._obj_body = {n: m.body(n).id for n in self.objects}
        self._obj_qadr = {n: m.joint(f'{n}_joint').qposadr[0] for n in self.objects}
        self._obj_dadr = {n: m.joint(f'{n}_joint').dofadr[0] for n in self.objects}
        self._lower = self.spec.lower.copy()
        self._upper = self.spec.upper.copy()
        self._max_dq = self.spec.velocity_limit * self.physics_dt
        n = len(self.joint_names)
        self._setpoint = np.zeros(n)
        self._target = np.zeros(n)
        self._traj_t: np.ndarray | None = None
        self._traj_q: np.ndarray | None = None
        self._renderer: mujoco.Renderer | None = None
        self._segmenter: mujoco.Renderer | None = None
        self._closed = False
        self._rng = np.random.default_rng(seed)
        self.episode_seed = int(seed)
        self.reset(seed=seed)

    # ------------------------------------------------------------------ episode
    @property
    def time(self) -> float:
        """Simulated seconds since the last reset."""
        return float(self.data.time)

    def reset(self, seed: int | None = None, q: np.ndarray | None = None) -> None:
        """Start a new episode: arm at ``q`` (default start pose), gripper open, objects placed.

        Args:
            seed: episode seed for the object placement; None draws a fresh one from the
                world's generator (seeded at construction), so runs stay reproducible.
            q: initial arm joints, clipped to the limits (default: WidowX OpenVLA start pose /
                Panda ready pose).

        Raises:
            ValueError: ``q`` has the wrong length or non-finite values.
        """
        self._check_open()
        if seed is None:
            seed = int(self._rng.integers(0, 2**31 - 1))
        self.episode_seed = int(seed)
        q0 = self.spec.start_q if q is None else self._check_q(q)
        q0 = np.clip(q0, self._lower, self._upper)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self._arm_qadr] = q0
        d.qpos[self._fing_qadr] = self.spec.finger_range[1]
        if self.task is not None:
            poses = self.task.sample_object_poses(np.random.default_rng(seed))
        else:
            poses = self._default_layout(np.random.default_rng(seed))
        for name, pose in poses.items():
            self.set_object_pose(name, pose)
        self._setpoint = q0.copy()
        self._target = q0.copy()
        self._traj_t = self._traj_q = None
        d.ctrl[self._arm_act] = q0
        d.ctrl[self._grip_act] = self.spec.finger_range[1]
        mujoco.mj_forward(m, d)
        self.step(0.3)  # let objects settle on the table before the episode starts
        d.time = 0.0

    def _default_layout(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Objects spread over the reachable part of the table (no task)."""
        free = Task(
            name='free',
            robot=self.robot,
            instruction='',
            objects=self.objects,
            pick=self.objects[0],
            place=None,
        )
        return free.sample_object_poses(rng)

    def set_object_pose(self, name: str, pose: np.ndarray) -> None:
        """Teleport object ``name`` to ``pose`` (4x4, base frame) and zero its velocity.

        Raises:
            ValueError: unknown object or a malformed pose.
        """
        self._check_open()
        if name not in self._obj_qadr:
            raise ValueError(f'unknown object {name!r}; scene has {list(self.objects)}')
        pose = np.asarray(pose, dtype=float)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            raise ValueError(f'object pose must be a finite 4x4 matrix, got {pose!r}')
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, np.ascontiguousarray(pose[:3, :3]).ravel())
        a = self._obj_qadr[name]
        self.data.qpos[a : a + 3] = pose[:3, 3]
        self.data.qpos[a + 3 : a + 7] = quat
        v = self._obj_dadr[name]
        self.data.qvel[v : v + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ commands
    def _check_open(self) -> None:
        if self._closed:
            raise SimError('SimWorld is closed')

    def _check_q(self, q) -> np.ndarray:
        arr = np.asarray(q, dtype=float).reshape(-1)
        if arr.shape != (len(self.joint_names),):
            raise ValueError(f'expected {len(self.joint_names)} joint values, got {q!r}')
        if not np.all(np.isfinite(arr)):
            raise ValueError(f'joint values must be finite, got {q!r}')
        return arr

    def set_arm_targets(self, q: np.ndarray) -> None:
        """Command joint position targets (clipped to the joint limits); cancels a trajectory.

        The setpoint moves toward the target at most at the joint velocity limit.

        Raises:
            ValueError: wrong length or non-finite values.
        """
        self._check_open()
        self._target = np.clip(self._check_q(q), self._lower, self._upper)
        self._traj_t = self._traj_q = None

    def set_arm_trajectory(self, points: list[tuple[float, np.ndarray]]) -> None:
        """Follow a joint trajectory: (time_from_now [s], q) points, linearly interpolated.

        It starts at the current setpoint now; after the last point the last q is held. Like a
        JointTrajectoryController, a new trajectory replaces the old one. Points are clipped to
        the joint limits and the velocity limit still applies.

        Raises:
            ValueError: empty, non-increasing or negative times, or bad joint vectors.
        """
        self._check_open()
        if len(points) == 0:
            raise ValueError('trajectory needs at least one point')
        times, qs = [0.0], [self._setpoint.copy()]
        for t, q in points:
            t = float(t)
            if not math.isfinite(t) or t < times[-1] or (t <= 0.0 and len(times) > 1):
                raise ValueError(f'trajectory times must be finite and increasing, got {t!r}')
            qs.append(np.clip(self._check_q(q), self._lower, self._upper))
            times.append(t)
        t_arr = np.asarray(times) + self.data.time
        self._traj_t, self._traj_q = t_arr, np.asarray(qs)
        self._target = self._traj_q[-1].copy()

    def _traj_sample(self, t: float) -> np.ndarray:
        tt, qq = self._traj_t, self._traj_q
        if t >= tt[-1]:
            return qq[-1]
        i = int(np.searchsorted(tt, t, side='right'))
        if i <= 0:
            return qq[0]
        span = tt[i] - tt[i - 1]
        s = 1.0 if span <= 0 else (t - tt[i - 1]) / span
        return qq[i - 1] + s * (qq[i] - qq[i - 1])

    def set_gripper(self, opening: float) -> None:
        """Command the gripper by normalized opening, 0 = closed .. 1 = open (clipped).

        Raises:
            ValueError: non-finite value.
        """
        self._check_open()
        opening = float(opening)
        if not math.isfinite(opening):
            raise ValueError(f'gripper opening must be finite, got {opening!r}')
        lo, hi = self.spec.finger_range
        self.data.ctrl[self._grip_act] = lo + min(max(opening, 0.0), 1.0) * (hi - lo)

    def set_gripper_width(self, width_m: float) -> None:
        """Command the gripper by width [m] = sum of both finger positions (Franka-style), clipped.

        Raises:
            ValueError: non-finite value.
        """
        self._check_open()
        width_m = float(width_m)
        if not math.isfinite(width_m):
            raise ValueError(f'gripper width must be finite, got {width_m!r}')
        lo, hi = self.spec.finger_range
        self.data.ctrl[self._grip_act] = min(max(width_m / 2.0, lo), hi)

    def step(self, duration: float) -> None:
        """Advance physics by ``duration`` seconds (a multiple of ``physics_dt``).

        Raises:
            ValueError: negative/non-finite duration or not a multiple of the timestep.
        """
        self._check_open()
        duration = float(duration)
        if not math.isfinite(duration) or duration < 0:
            raise ValueError(f'duration must be finite and >= 0, got {duration!r}')
        n = int(round(duration / self.physics_dt))
        if abs(n * self.physics_dt - duration) > 1e-6 * max(1.0, duration):
            raise ValueError(
                f'duration {duration!r} is not a multiple of physics_dt {self.physics_dt!r}'
            )
        m, d = self.model, self.data
        act = self._arm_act
        dt = self.physics_dt
        sp = self._setpoint
        max_dq = self._max_dq
        for k in range(n):
            if self._traj_t is None:
                desired = self._target
                if np.array_equal(desired, sp):
                    d.ctrl[act] = sp
                    mujoco.mj_step(m, d, nstep=n - k)
                    break
            else:
                desired = self._traj_sample(d.time + dt)
                if d.time + dt >= self._traj_t[-1]:
                    self._traj_t = self._traj_q = None
            err = desired - sp
            sp[:] = np.where(np.abs(err) <= max_dq, desired, sp + np.sign(err) * max_dq)
            d.ctrl[act] = sp
            mujoco.mj_step(m, d)

    # ------------------------------------------------------------------ state
    @property
    def arm_targets(self) -> np.ndarray:
        """The commanded arm joint targets (end of the trajectory when one is running)."""
        return self._target.copy()

    @property
    def arm_setpoint(self) -> np.ndarray:
        """The velocity-limited setpoint the joint servos track right now."""
        return self._setpoint.copy()

    def arm_q(self) -> np.ndarray:
        """Measured arm joint positions [rad]."""
        return self.data.qpos[self._arm_qadr].copy()

    def joint_state(self) -> JointStateData:
        """Arm joints then fingers: positions, velocities and efforts."""
        self._check_open()
        d = self.data
        qa = np.concatenate([self._arm_qadr, self._fing_qadr])
        da = np.concatenate([self._arm_dadr, self._fing_dadr])
        effort = np.concatenate(
            [d.actuator_force[self._arm_act], d.qfrc_actuator[self._fing_dadr]]
        )
        return JointStateData(
            self.joint_names + self.finger_joint_names,
            d.qpos[qa].copy(),
            d.qvel[da].copy(),
            effort,
        )

    def gripper_opening(self) -> float:
        """Measured normalized opening (0 = closed .. 1 = open) from the finger positions."""
        lo, hi = self.spec.finger_range
        mean = float(np.mean(self.data.qpos[self._fing_qadr]))
        return min(max((mean - lo) / (hi - lo), 0.0), 1.0)

    def ee_pose(self) -> np.ndarray:
        """TCP pose (4x4) in the base frame, from the MuJoCo site."""
        self._check_open()
        return _pose(self.data.site_xpos[self._site], self.data.site_xmat[self._site])

    def object_poses(self) -> dict[str, np.ndarray]:
        """Pose (4x4, base frame) of every object, by name."""
        self._check_open()
        d = self.data
        return {n: _pose(d.xpos[b], d.xmat[b]) for n, b in self._obj_body.items()}

    def touching(self, body_a: str, body_b: str) -> bool:
        """True if any geom of body ``body_a`` is in contact with one of body ``body_b``.

        ``'gripper'`` names both finger bodies, ``'table'`` the table top.
        """
        ids_a, ids_b = self._body_ids(body_a), self._body_ids(body_b)
        d, m = self.data, self.model
        if d.ncon == 0:
            return False
        b1 = m.geom_bodyid[d.contact.geom1[: d.ncon]]
        b2 = m.geom_bodyid[d.contact.geom2[: d.ncon]]
        a1, a2 = np.isin(b1, ids_a), np.isin(b2, ids_a)
        c1, c2 = np.isin(b1, ids_b), np.isin(b2, ids_b)
        return bool(np.any((a1 & c2) | (a2 & c1)))

    def _body_ids(self, name: str) -> list[int]:
        if name == 'gripper':
            return [
                self.model.body('left_finger_link').id,
                self.model.body('right_finger_link').id,
            ]
        if name == 'table':
            return [0]  # the table top is a world geom (the floor is far below)
        try:
            return [self.model.body(name).id]
        except KeyError:
            raise ValueError(f'unknown body {name!r}') from None

    # ------------------------------------------------------------------ camera
    def render(self) -> np.ndarray:
        """Render the scene camera: (H, W, 3) uint8 RGB. The renderer is created lazily."""
        self._check_open()
        if self._renderer is None:
            _load_triton_before_gl()
            self._renderer = mujoco.Renderer(self.model, self.image_size[0], self.image_size[1])
        self._renderer.update_scene(self.data, camera=self._cam)
        return np.array(self._renderer.render(), dtype=np.uint8, copy=True)

    def segment(self, names: tuple[str, ...]) -> np.ndarray:
        """Which of ``names`` each pixel of the scene camera shows: (H, W) int16, the index in
        ``names`` or -1 (table, other bodies, background). Names are bodies as in `touching`:
        objects, ``'gripper'`` for both fingers.

        Privileged ground truth for training a vision stage (`finetune/vision_pretrain.py`);
        the policy itself only ever sees `render`.

        Raises:
            ValueError: an unknown body name.
        """
        self._check_open()
        m = self.model
        body_class = np.full(m.nbody, -1, dtype=np.int16)
        for index, name in enumerate(names):
            body_class[self._body_ids(name)] = index
        geom_class = body_class[m.geom_bodyid]
        if self._segmenter is None:
            _load_triton_before_gl()
            self._segmenter = mujoco.Renderer(m, self.image_size[0], self.image_size[1])
            self._segmenter.enable_segmentation_rendering()
        self._segmenter.update_scene(self.data, camera=self._cam)
        ids = self._segmenter.render()  # (H, W, 2): object id, object type
        geom, kind = ids[..., 0], ids[..., 1]
        is_geom = (kind == int(mujoco.mjtObj.mjOBJ_GEOM)) & (geom >= 0)
        return np.where(is_geom, geom_class[np.clip(geom, 0, None)], -1).astype(np.int16)

    def camera_info(self) -> CameraIntrinsics:
        """Pinhole intrinsics of the scene camera."""
        h, w = self.image_size
        fovy = float(self.model.cam_fovy[self._cam])
        f = 0.5 * h / math.tan(math.radians(fovy) / 2.0)
        return CameraIntrinsics(
            width=w,
            height=h,
            fx=f,
            fy=f,
            cx=w / 2.0,
            cy=h / 2.0,
            frame_id=self.spec.camera.frame_id,
            fovy_deg=fovy,
        )

    def camera_pose(self) -> np.ndarray:
        """Pose (4x4, base frame) of the camera *optical* frame (z forward, x right, y down)."""
        d = self.data
        rot = d.cam_xmat[self._cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        return _pose(d.cam_xpos[self._cam], rot)

    def close(self) -> None:
        """Release the renderer; later calls raise SimError. Safe to call twice."""
        for renderer in (self._renderer, self._segmenter):
            if renderer is not None:
                renderer.close()
        self._renderer = self._segmenter = None
        self._closed = True

    def __enter__(self) -> SimWorld:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _load_triton_before_gl() -> None:
    """Loads triton (torch's compiler back end, if installed) before the first GL context.

    Mesa's EGL drivers load the system LLVM; triton's extension carries its own. Loaded in that
    order, importing torchvision or torch._dynamo later in the same process crashes (seen with
    torch 2.14 and Mesa on Debian 12); loaded the other way round, both work.
    """
    try:
        import triton  # noqa: F401, PLC0415
    except ImportError:
        pass
