"""A URDF of an arm built from its product-of-exponentials model, for rviz's RobotModel.

The simulator has no vendor description to publish, so ``robot_state_publisher`` gets this one:
every link frame is parallel to the base at q = 0, joint i sits on its screw axis, and a fixed
joint carries the tool centre point, so the URDF's forward kinematics equals ``ArmKinematics.fk``
(a test checks it). Links are drawn as capsules between consecutive joints.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import quoteattr

import numpy as np
from scipy.spatial.transform import Rotation

from openvla_ros.control.kinematics import ArmKinematics

__all__ = ['urdf_from_kinematics']


def _fmt(values) -> str:
    return ' '.join(f'{float(v):.15g}' for v in values)


def _axis_points(kin: ArmKinematics) -> np.ndarray:
    """(n, 3): for each joint, the point of its axis nearest the base origin."""
    points = []
    for screw in kin.screws:
        w, v = screw[:3], screw[3:]
        points.append(np.cross(w, v) / float(np.dot(w, w)))  # v = -w x p  =>  w x v = p_perp
    return np.array(points)


def _segment_visual(vector: np.ndarray, radius: float, colour: str) -> str:
    length = float(np.linalg.norm(vector))
    if length < 1e-6:
        return (f'<visual><geometry><sphere radius="{radius * 1.3:.4g}"/></geometry>'
                f'<material name={quoteattr(colour)}/></visual>')
    dx, dy, dz = vector / length
    # URDF rpy is R = Rz(yaw) Ry(pitch) Rx(roll); with yaw = 0,
    # R z = (cos r sin p, -sin r, cos r cos p): no Euler singularity to meet.
    rpy = (-math.asin(max(-1.0, min(1.0, dy))), math.atan2(dx, dz), 0.0)
    return (f'<visual><origin xyz="{_fmt(vector / 2)}" rpy="{_fmt(rpy)}"/>'
            f'<geometry><cylinder radius="{radius:.4g}" length="{length:.15g}"/></geometry>'
            f'<material name={quoteattr(colour)}/></visual>')


def urdf_from_kinematics(kin: ArmKinematics, *, base_link: str, tool_link: str | None = None,
                         radius: float = 0.02, effort: float = 10.0) -> str:
    """The arm as a URDF string: base_link -> one link per joint -> tool_link (the TCP).

    Args:
        kin: the arm's kinematics (joint names, limits, screw axes, home pose).
        base_link: name of the root link (the base frame, e.g. ``wx250s/base_link``).
        tool_link: name of the TCP link (default ``<base prefix>ee_link``).
        radius: [m] drawn link radius.
        effort: [N m] effort limit written into each joint (URDF requires one).
    """
    prefix = base_link.rsplit('base_link', 1)[0] if base_link.endswith('base_link') else ''
    tool_link = tool_link or f'{prefix}ee_link'
    points = _axis_points(kin)
    link_names = [f'{prefix}{name}_link' for name in kin.joint_names]
    parts = [f'<?xml version="1.0"?>\n<robot name={quoteattr(kin.name)}>',
             '<material name="grey"><color rgba="0.3 0.3 0.32 1"/></material>',
             '<material name="orange"><color rgba="0.95 0.5 0.1 1"/></material>',
             f'<link name={quoteattr(base_link)}>'
             f'{_segment_visual(points[0], radius, "grey")}</link>']
    previous = np.zeros(3)
    parent = base_link
    home = kin.home
    for i, (joint, link) in enumerate(zip(kin.joint_names, link_names)):
        nxt = points[i + 1] if i + 1 < len(points) else home[:3, 3]
        parts.append(f'<link name={quoteattr(link)}>'
                     f'{_segment_visual(nxt - points[i], radius, "grey")}</link>')
        parts.append(
            f'<joint name={quoteattr(joint)} type="revolute">'
            f'<parent link={quoteattr(parent)}/><child link={quoteattr(link)}/>'
            f'<origin xyz="{_fmt(points[i] - previous)}" rpy="0 0 0"/>'
            f'<axis xyz="{_fmt(kin.screws[i][:3])}"/>'
            f'<limit lower="{kin.lower[i]:.9g}" upper="{kin.upper[i]:.9g}" '
            f'velocity="{kin.max_velocity[i]:.9g}" effort="{effort:.4g}"/></joint>')
        previous, parent = points[i], link
    rpy = Rotation.from_matrix(home[:3, :3]).as_euler('xyz')
    parts.append(f'<link name={quoteattr(tool_link)}>'
                 f'{_segment_visual(np.zeros(3), radius * 0.8, "orange")}</link>')
    parts.append(f'<joint name={quoteattr(prefix + "ee_fixed")} type="fixed">'
                 f'<parent link={quoteattr(parent)}/><child link={quoteattr(tool_link)}/>'
                 f'<origin xyz="{_fmt(home[:3, 3] - previous)}" rpy="{_fmt(rpy)}"/></joint>')
    parts.append('</robot>\n')
    return '\n'.join(parts)
