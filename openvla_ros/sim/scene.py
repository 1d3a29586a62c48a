"""MJCF generation for the simulated arms, table, objects and camera.

The arm models are written here from the published kinematics (ROBOTS.md), not copied from a
model zoo: the WidowX 250 6DOF joint axes and positions reproduce the Interbotix product-of-
exponentials model (home pose ``M`` at q = 0), the Panda links follow Franka's modified-DH table.
Geometry is simple capsules and boxes with plausible masses; gravity is compensated per body
(``gravcomp``), as the real position-controlled servos / Franka's controller do, so joint
targets are tracked without a steady-state sag. The world frame is the robot base frame and the
table top is at z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from openvla_ros.control.kinematics import FRANKA_DH, FRANKA_FLANGE_D

ROBOTS = ('panda', 'fr3', 'wx250s')


@dataclass(frozen=True)
class CameraSpec:
    """Where the third-person camera sits (base frame) and its vertical field of view."""

    name: str
    pos: tuple[float, float, float]
    lookat: tuple[float, float, float]
    fovy_deg: float
    frame_id: str


@dataclass(frozen=True)
class RobotSpec:
    """Static facts about one simulated arm (names, limits, start pose, gripper, camera)."""

    name: str
    joint_names: tuple[str, ...]
    finger_joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity_limit: np.ndarray
    start_q: np.ndarray
    finger_range: tuple[float, float]
    camera: CameraSpec
    tcp_site: str = 'ee'
    table_center: tuple[float, float] = (0.3, 0.0)
    table_half: tuple[float, float] = (0.45, 0.5)
    # region of the table where tasks place objects: (x min, x max, y min, y max)
    object_region: tuple[float, float, float, float] = (0.2, 0.38, -0.13, 0.13)

    @property
    def finger_width_range(self) -> tuple[float, float]:
        """Width (sum of both finger joint positions) at closed and fully open."""
        return 2.0 * self.finger_range[0], 2.0 * self.finger_range[1]


# WidowX 250 6DOF start pose: joint solution of OpenVLA's WidowX start pose (xyz [0.3, -0.09,
# 0.26], quaternion [0, -0.259, 0, -0.966]) computed offline with damped least squares on the
# model below; test_scene checks it reproduces that pose.
_WX_START_Q = np.array([-0.50528396, -0.44782381, 0.52072699, 0.75686938, 0.65656353, -0.91229446])

_PANDA_LOWER = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
_PANDA_UPPER = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
_PANDA_VEL = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])
_PANDA_READY = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])


def robot_spec(robot: str) -> RobotSpec:
    """Return the static description of ``robot``.

    Args:
        robot: 'wx250s', 'panda' or 'fr3' (FR3 uses the Panda model with ``fr3_*`` names).

    Raises:
        ValueError: unknown robot name.
    """
    if robot == 'wx250s':
        deg = math.pi / 180.0
        return RobotSpec(
            name='wx250s',
            joint_names=(
                'waist',
                'shoulder',
                'elbow',
                'forearm_roll',
                'wrist_angle',
                'wrist_rotate',
            ),
            finger_joint_names=('left_finger', 'right_finger'),
            lower=np.array([-math.pi, -108 * deg, -123 * deg, -math.pi, -100 * deg, -math.pi]),
            upper=np.array([math.pi, 114 * deg, 92 * deg, math.pi, 123 * deg, math.pi]),
            velocity_limit=np.full(6, math.pi),
            start_q=_WX_START_Q.copy(),
            finger_range=(0.015, 0.037),
            # Third-person view like BridgeData's /blue camera: across the table from the
            # robot, raised, looking down at the workspace, so the arm enters the image from the
            # top as in the Bridge images OpenVLA was trained on.
            camera=CameraSpec(
                'scene_cam', (0.72, 0.1, 0.48), (0.22, -0.02, 0.09), 50.0, 'camera_optical_frame'
            ),
            table_center=(0.25, 0.0),
            table_half=(0.4, 0.45),
            object_region=(0.21, 0.38, -0.14, 0.14),
        )
    if robot in ('panda', 'fr3'):
        return RobotSpec(
            name=robot,
            joint_names=tuple(f'{robot}_joint{i}' for i in range(1, 8)),
            finger_joint_names=(f'{robot}_finger_joint1', f'{robot}_finger_joint2'),
            lower=_PANDA_LOWER.copy(),
            upper=_PANDA_UPPER.copy(),
            velocity_limit=_PANDA_VEL.copy(),
            start_q=_PANDA_READY.copy(),
            finger_range=(0.0, 0.04),
            camera=CameraSpec(
                'scene_cam', (1.3, 0.5, 0.85), (0.4, 0.0, 0.22), 50.0, 'camera_optical_frame'
            ),
            table_center=(0.45, 0.0),
            table_half=(0.55, 0.6),
            object_region=(0.4, 0.62, -0.2, 0.2),
        )
    raise ValueError(f'unknown robot {robot!r}; known: {list(ROBOTS)}')


@dataclass(frozen=True)
class ObjectSpec:
    """A graspable/placeable object: one free body whose origin is its geometric centre."""

    name: str
    kind: str  # block | carrot | plate | spoon | towel
    rgba: tuple[float, float, float, float]
    size: tuple[float, ...]
    mass: float

    @property
    def half_height(self) -> float:
        """Height of the body origin above the table when resting flat."""
        if self.kind == 'block':
            return self.size[2]
        if self.kind == 'carrot':
            return self.size[0]
        if self.kind in ('plate', 'towel', 'spoon'):
            return self.size[-1]
        raise AssertionError(self.kind)


OBJECTS: dict[str, ObjectSpec] = {
    # carrot: capsule along its body x axis, radius 0.012, half length 0.035
    'carrot': ObjectSpec('carrot', 'carrot', (0.95, 0.45, 0.05, 1.0), (0.012, 0.035), 0.03),
    # plate: cylinder radius 0.075, half height 0.006
    'plate': ObjectSpec('plate', 'plate', (0.92, 0.92, 0.88, 1.0), (0.075, 0.006), 0.15),
    # spoon: handle box half (0.05, 0.011, 0.006) plus a bowl at +x
    'spoon': ObjectSpec('spoon', 'spoon', (0.55, 0.55, 0.6, 1.0), (0.05, 0.011, 0.006), 0.03),
    # towel: thin plate half (0.08, 0.08, 0.003)
    'towel': ObjectSpec('towel', 'towel', (0.2, 0.45, 0.85, 1.0), (0.08, 0.08, 0.003), 0.05),
    'red_block': ObjectSpec(
        'red_block', 'block', (0.85, 0.1, 0.1, 1.0), (0.015, 0.015, 0.015), 0.04
    ),
    'green_block': ObjectSpec(
        'green_block', 'block', (0.1, 0.7, 0.2, 1.0), (0.015, 0.015, 0.015), 0.04
    ),
    'blue_block': ObjectSpec(
        'blue_block', 'block', (0.15, 0.25, 0.9, 1.0), (0.015, 0.015, 0.015), 0.04
    ),
    'yellow_block': ObjectSpec(
        'yellow_block', 'block', (0.95, 0.85, 0.1, 1.0), (0.015, 0.015, 0.015), 0.04
    ),
}
# The Panda's hand is bigger: its blocks are 4 cm cubes.
PANDA_BLOCK_HALF = 0.02


def object_spec(name: str, robot: str = 'wx250s') -> ObjectSpec:
    """Return the object ``name`` sized for ``robot``.

    Raises:
        ValueError: unknown object name.
    """
    try:
        spec = OBJECTS[name]
    except KeyError:
        raise ValueError(f'unknown object {name!r}; known: {sorted(OBJECTS)}') from None
    if spec.kind == 'block' and robot in ('panda', 'fr3'):
        h = PANDA_BLOCK_HALF
        spec = ObjectSpec(spec.name, spec.kind, spec.rgba, (h, h, h), 0.08)
    return spec


# Collision bits: 1 = static world (table), 2 = objects, 4 = robot.
# Arm links touch objects only; fingers touch the table and objects; robot parts never touch
# each other (the real arms have no self-collision in their workspace here).
_TABLE = 'contype="1" conaffinity="2"'
_OBJECT = 'contype="2" conaffinity="7"'
_LINK = 'contype="4" conaffinity="2"'
_FINGER = 'contype="4" conaffinity="3"'


def _f(values) -> str:
    return ' '.join(f'{float(v):.6g}' for v in np.atleast_1d(values))


def _quat_rotx(alpha: float) -> np.ndarray:
    return np.array([math.cos(alpha / 2), math.sin(alpha / 2), 0.0, 0.0])


def _link_geom(to: np.ndarray, radius: float, mass: float, rgba: str) -> str:
    """Capsule from the body origin to ``to`` (sphere when ``to`` is the origin)."""
    if np.linalg.norm(to) < 1e-6:
        return f'<geom type="sphere" size="{radius:.4g}" mass="{mass:.4g}" rgba="{rgba}" {_LINK}/>'
    return (
        f'<geom type="capsule" fromto="0 0 0 {_f(to)}" size="{radius:.4g}" '
        f'mass="{mass:.4g}" rgba="{rgba}" {_LINK}/>'
    )


def _wx250s_arm(spec: RobotSpec) -> tuple[str, str]:
    """Bodies and actuators of the WidowX 250 6DOF.

    Joint points (base frame, q = 0) from the PoE screw axes: waist on the z axis, shoulder at
    z = 0.11065, elbow at (0.04975, 0.36065), forearm_roll on the line z = 0.36065, wrist_angle at
    x = 0.29975, wrist_rotate on the x axis line, TCP at (0.458325, 0, 0.36065); all frames are
    aligned with the base frame at q = 0, so M is the identity rotation.
    """
    dark = '0.15 0.15 0.17 1'
    grey = '0.35 0.35 0.38 1'
    lo, hi = spec.lower, spec.upper
    j = spec.joint_names
    ee_x = 0.458325 - 0.36475
    fr_lo, fr_hi = spec.finger_range
    body = f"""
    <body name="base_link" pos="0 0 0">
      <geom type="box" pos="0 0 0.02" size="0.06 0.06 0.02" rgba="{dark}" {_LINK} mass="1"/>
      <geom type="cylinder" pos="0 0 0.05" size="0.04 0.012" rgba="{grey}" {_LINK} mass="0.3"/>
      <body name="shoulder_link" pos="0 0 0.072">
        <joint name="{j[0]}" axis="0 0 1" range="{lo[0]:.6f} {hi[0]:.6f}" class="arm"/>
        <geom type="cylinder" pos="0 0 0.015" size="0.035 0.02" rgba="{dark}" {_LINK}
              mass="0.48"/>
        <body name="upper_arm_link" pos="0 0 0.03865">
          <joint name="{j[1]}" axis="0 1 0" range="{lo[1]:.6f} {hi[1]:.6f}" class="arm"/>
          {_link_geom(np.array([0.04975, 0.0, 0.25]), 0.022, 0.43, dark)}
          <body name="upper_forearm_link" pos="0.04975 0 0.25">
            <joint name="{j[2]}" axis="0 1 0" range="{lo[2]:.6f} {hi[2]:.6f}" class="arm"/>
            {_link_geom(np.array([0.175, 0.0, 0.0]), 0.02, 0.3, dark)}
            <body name="lower_forearm_link" pos="0.175 0 0">
              <joint name="{j[3]}" axis="1 0 0" range="{lo[3]:.6f} {hi[3]:.6f}" class="arm"/>
              {_link_geom(np.array([0.075, 0.0, 0.0]), 0.018, 0.2, grey)}
              <body name="wrist_link" pos="0.075 0 0">
                <joint name="{j[4]}" axis="0 1 0" range="{lo[4]:.6f} {hi[4]:.6f}" class="arm"/>
                {_link_geom(np.array([0.065, 0.0, 0.0]), 0.017, 0.08, dark)}
                <body name="gripper_link" pos="0.065 0 0">
                  <joint name="{j[5]}" axis="1 0 0" range="{lo[5]:.6f} {hi[5]:.6f}"
                         class="arm"/>
                  <geom type="box" pos="0.035 0 0" size="0.03 0.045 0.018" rgba="{grey}"
                        {_LINK} mass="0.12"/>
                  <site name="ee" pos="{ee_x:.6f} 0 0" size="0.006" rgba="1 0 1 0.4"
                        group="3"/>
                  <body name="left_finger_link" pos="{ee_x:.6f} {fr_hi:.6f} 0">
                    <joint name="left_finger" type="slide" axis="0 1 0" ref="{fr_hi:.6f}"
                           range="{fr_lo:.6f} {fr_hi:.6f}" class="finger"/>
                    <geom type="box" pos="-0.02 0.002 0" size="0.02 0.003 0.012"
                          rgba="{grey}" {_LINK} mass="0.01"/>
                    <geom name="left_pad" type="box" pos="-0.0075 -0.003 0"
                          size="0.0175 0.004 0.012" class="pad" mass="0.01"/>
                  </body>
                  <body name="right_finger_link" pos="{ee_x:.6f} {-fr_hi:.6f} 0">
                    <joint name="right_finger" type="slide" axis="0 -1 0" ref="{fr_hi:.6f}"
                           range="{fr_lo:.6f} {fr_hi:.6f}" class="finger"/>
                    <geom type="box" pos="-0.02 -0.002 0" size="0.02 0.003 0.012"
                          rgba="{grey}" {_LINK} mass="0.01"/>
                    <geom name="right_pad" type="box" pos="-0.0075 0.003 0"
                          size="0.0175 0.004 0.012" class="pad" mass="0.01"/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>"""
    kp = (60, 80, 60, 25, 25, 15)
    kv = (5, 7, 5, 1.5, 1.5, 0.8)
    act = '\n'.join(
        f'<position name="{n}" joint="{n}" kp="{p}" kv="{v}" ctrlrange="{a:.6f} {b:.6f}"/>'
        for n, p, v, a, b in zip(j, kp, kv, lo, hi)
    )
    act += (
        f'\n<position name="gripper" tendon="gripper" kp="1000" kv="20" '
        f'ctrlrange="{fr_lo} {fr_hi}" forcelimited="true" forcerange="-12 12"/>'
    )
    return body, act


def _panda_arm(spec: RobotSpec) -> tuple[str, str]:
    """Bodies and actuators of the Panda/FR3 from Franka's modified-DH table.

    Each link frame is ``RotX(alpha) TransX(a) TransZ(d)`` from its parent with the joint about
    the local z axis; the hand is on the flange (d = 0.107) rotated -pi/4 about z and the TCP
    0.1034 m further along z.
    """
    dh = [*FRANKA_DH, (0.0, FRANKA_FLANGE_D, 0.0)]  # the kinematics' table: one source
    masses = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)
    radii = (0.065, 0.06, 0.06, 0.055, 0.055, 0.05, 0.045)
    white = '0.93 0.93 0.93 1'
    dark = '0.2 0.2 0.22 1'

    def child_pos(i: int) -> np.ndarray:
        a, d, alpha = dh[i]
        return np.array([a, -math.sin(alpha) * d, math.cos(alpha) * d])

    j = spec.joint_names
    lo, hi = spec.lower, spec.upper
    fr_lo, fr_hi = spec.finger_range
    fj = spec.finger_joint_names
    inner = f"""
      <body name="hand" pos="{_f(child_pos(7))}" quat="{
        _f([math.cos(-math.pi / 8), 0, 0, math.sin(-math.pi / 8)])
    }">
        <geom type="box" pos="0 0 0.03" size="0.025 0.1 0.025" rgba="{white}" {_LINK}
              mass="0.73"/>
        <site name="ee" pos="0 0 0.1034" size="0.008" rgba="1 0 1 0.4" group="3"/>
        <body name="left_finger_link" pos="0 {fr_hi} 0.0584">
          <joint name="{fj[0]}" type="slide" axis="0 1 0" ref="{fr_hi}"
                 range="{fr_lo} {fr_hi}" class="finger"/>
          <geom type="box" pos="0 0.01 0.015" size="0.01 0.01 0.015" rgba="{dark}" {_LINK}
                mass="0.01"/>
          <geom name="left_pad" type="box" pos="0 0.005 0.04" size="0.01 0.005 0.015"
                class="pad" mass="0.01"/>
        </body>
        <body name="right_finger_link" pos="0 {-fr_hi} 0.0584">
          <joint name="{fj[1]}" type="slide" axis="0 -1 0" ref="{fr_hi}"
                 range="{fr_lo} {fr_hi}" class="finger"/>
          <geom type="box" pos="0 -0.01 0.015" size="0.01 0.01 0.015" rgba="{dark}" {_LINK}
                mass="0.01"/>
          <geom name="right_pad" type="box" pos="0 -0.005 0.04" size="0.01 0.005 0.015"
                class="pad" mass="0.01"/>
        </body>
      </body>"""
    body = inner
    for i in reversed(range(7)):
        a, d, alpha = dh[i]
        pos = child_pos(i)
        geom = _link_geom(child_pos(i + 1), radii[i], masses[i], white if i % 2 == 0 else dark)
        body = f"""
    <body name="link{i + 1}" pos="{_f(pos)}" quat="{_f(_quat_rotx(alpha))}">
      <joint name="{j[i]}" axis="0 0 1" range="{lo[i]:.6f} {hi[i]:.6f}" class="arm"/>
      {geom}{body}
    </body>"""
    body = f"""
    <body name="link0" pos="0 0 0">
      <geom type="cylinder" pos="0 0 0.05" size="0.09 0.05" rgba="{white}" {_LINK} mass="3"/>
      {body}
    </body>"""
    kp = (4500, 4500, 3500, 3500, 2000, 2000, 2000)
    kv = (450, 450, 350, 350, 200, 200, 200)
    act = '\n'.join(
        f'<position name="{n}" joint="{n}" kp="{p}" kv="{v}" ctrlrange="{a:.6f} {b:.6f}"/>'
        for n, p, v, a, b in zip(j, kp, kv, lo, hi)
    )
    act += (
        f'\n<position name="gripper" tendon="gripper" kp="2000" kv="40" '
        f'ctrlrange="{fr_lo} {fr_hi}" forcelimited="true" forcerange="-70 70"/>'
    )
    return body, act


def _object_body(spec: ObjectSpec, pos: np.ndarray) -> str:
    c = _f(spec.rgba)
    s = spec.size
    if spec.kind == 'block':
        geoms = f'<geom type="box" size="{_f(s)}" rgba="{c}" mass="{spec.mass}" class="obj"/>'
    elif spec.kind == 'carrot':
        geoms = (
            f'<geom type="capsule" size="{s[0]} {s[1]}" quat="0.7071068 0 0.7071068 0" '
            f'rgba="{c}" mass="{spec.mass}" class="obj" condim="6" friction="1 0.01 0.003"/>'
            f'<geom type="sphere" size="0.006" pos="{s[1] + s[0]:.4f} 0 0" '
            f'rgba="0.2 0.6 0.15 1" mass="0.001" class="obj"/>'
        )
    elif spec.kind == 'plate':
        geoms = f'<geom type="cylinder" size="{_f(s)}" rgba="{c}" mass="{spec.mass}" class="obj"/>'
    elif spec.kind == 'towel':
        geoms = (
            f'<geom type="box" size="{_f(s)}" rgba="{c}" mass="{spec.mass}" class="obj" '
            f'friction="1.5 0.02 0.001"/>'
        )
    elif spec.kind == 'spoon':
        geoms = (
            f'<geom type="box" size="{_f(s)}" rgba="{c}" mass="{spec.mass}" class="obj"/>'
            f'<geom type="ellipsoid" size="0.025 0.018 {s[2]}" pos="{s[0] + 0.02:.4f} 0 0" '
            f'rgba="{c}" mass="0.01" class="obj"/>'
        )
    else:  # pragma: no cover - OBJECTS only holds the kinds above
        raise AssertionError(spec.kind)
    return (
        f'<body name="{spec.name}" pos="{_f(pos)}">'
        f'<freejoint name="{spec.name}_joint"/>{geoms}</body>'
    )


def camera_xyaxes(pos, lookat) -> np.ndarray:
    """MuJoCo camera ``xyaxes`` (right, up) for a camera at ``pos`` looking at ``lookat``."""
    fwd = np.asarray(lookat, float) - np.asarray(pos, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    return np.concatenate([right, up])


def build_scene_xml(
    robot: str,
    objects: tuple[str, ...] | list[str] = (),
    image_size: tuple[int, int] = (480, 640),
    physics_dt: float = 0.002,
    shadows: bool = False,
) -> str:
    """Return the MJCF text of ``robot`` on a table with ``objects`` and the scene camera.

    Args:
        robot: 'wx250s', 'panda' or 'fr3'.
        objects: names from ``OBJECTS``; each becomes a free body (placed by the task later).
        image_size: (height, width) of the offscreen buffer.
        physics_dt: simulation timestep [s].
        shadows: cast shadows from the top light (nicer, about twice the render time).

    Raises:
        ValueError: unknown robot/object, or a non-positive image size or timestep.
    """
    spec = robot_spec(robot)
    height, width = (int(v) for v in image_size)
    if height <= 0 or width <= 0:
        raise ValueError(f'image_size must be positive, got {image_size!r}')
    if not (physics_dt > 0 and math.isfinite(physics_dt)):
        raise ValueError(f'physics_dt must be positive, got {physics_dt!r}')
    if robot == 'wx250s':
        arm, actuators = _wx250s_arm(spec)
        arm_armature, arm_damping = 0.02, 0.1
    else:
        arm, actuators = _panda_arm(spec)
        arm_armature, arm_damping = 0.1, 1.0
    arm = arm.replace('<body name=', '<body gravcomp="1" name=')
    fj = spec.finger_joint_names
    tx, ty = spec.table_center
    hx, hy = spec.table_half
    bodies = []
    for i, name in enumerate(objects):
        ospec = object_spec(name, robot)
        # default parking spot in a row at the back of the table; tasks move objects at reset
        pos = np.array([tx - hx + 0.1 + 0.12 * i, hy - 0.1, ospec.half_height + 0.001])
        bodies.append(_object_body(ospec, pos))
    cam = spec.camera
    return f"""<mujoco model="openvla_ros_{robot}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{physics_dt}" integrator="implicitfast" cone="elliptic" impratio="10"
          jacobian="dense"/>
  <visual>
    <global offwidth="{width}" offheight="{height}"/>
    <quality shadowsize="2048"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0.1 0.1 0.1"/>
  </visual>
  <asset>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.3 0.3 0.32" rgb2="0.25 0.25 0.27"
             width="256" height="256"/>
    <material name="floor" texture="floor" texrepeat="8 8"/>
    <texture name="wood" type="2d" builtin="flat" rgb1="0.62 0.48 0.33" mark="random"
             random="0.08" width="256" height="256" markrgb="0.55 0.42 0.28"/>
    <material name="table" texture="wood" texrepeat="2 2" specular="0.1"/>
  </asset>
  <default>
    <default class="arm">
      <joint armature="{arm_armature}" damping="{arm_damping}"/>
    </default>
    <default class="finger">
      <joint armature="0.005" damping="2" limited="true"/>
    </default>
    <default class="pad">
      <geom {_FINGER} condim="4" friction="1.5 0.02 0.002" solref="0.005 1"
            solimp="0.95 0.99 0.001" rgba="0.1 0.1 0.1 1" priority="1"/>
    </default>
    <default class="obj">
      <geom {_OBJECT} condim="4" friction="1.0 0.01 0.001" solref="0.005 1"
            solimp="0.95 0.99 0.001"/>
    </default>
  </default>
  <worldbody>
    <light name="top" pos="{tx} 0 2.0" dir="0 0 -1" directional="true" diffuse="0.6 0.6 0.6"
           castshadow="{'true' if shadows else 'false'}"/>
    <light name="side" pos="{tx + 1.0} -1.0 1.5" dir="-0.5 0.5 -0.7" diffuse="0.3 0.3 0.3"
           castshadow="false"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" material="floor"
          contype="1" conaffinity="2"/>
    <geom name="table" type="box" pos="{tx} {ty} -0.025" size="{hx} {hy} 0.025"
          material="table" {_TABLE} condim="3" friction="0.8 0.01 0.001"/>
    <geom name="table_leg" type="box" pos="{tx} {ty} -0.4" size="{hx - 0.05} {hy - 0.05} 0.35"
          rgba="0.3 0.25 0.2 1" contype="0" conaffinity="0"/>
    <camera name="{cam.name}" pos="{_f(cam.pos)}" xyaxes="{_f(camera_xyaxes(cam.pos, cam.lookat))}"
            fovy="{cam.fovy_deg}"/>
    {arm}
    {''.join(bodies)}
  </worldbody>
  <tendon>
    <fixed name="gripper">
      <joint joint="{fj[0]}" coef="0.5"/>
      <joint joint="{fj[1]}" coef="0.5"/>
    </fixed>
  </tendon>
  <equality>
    <joint joint1="{fj[0]}" joint2="{fj[1]}" polycoef="0 1 0 0 0" solref="0.005 1"/>
  </equality>
  <actuator>
    {actuators}
  </actuator>
</mujoco>
"""
