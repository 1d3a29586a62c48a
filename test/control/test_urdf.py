"""The generated URDF (rviz's robot model in simulation) has the same forward kinematics as the
control core, for every arm."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from openvla_ros.control.kinematics import get_kinematics, KNOWN_ARMS
from openvla_ros.control.urdf import urdf_from_kinematics


def _transform(xyz: str, rpy: str) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = Rotation.from_euler('xyz', [float(v) for v in rpy.split()]).as_matrix()
    t[:3, 3] = [float(v) for v in xyz.split()]
    return t


def urdf_fk(urdf: str, q: dict[str, float]) -> np.ndarray:
    """Walks the URDF chain from its root (joints in document order) with joint values q."""
    root = ET.fromstring(urdf.split('?>', 1)[1])
    t = np.eye(4)
    for joint in root.findall('joint'):
        origin = joint.find('origin')
        t = t @ _transform(origin.get('xyz'), origin.get('rpy'))
        if joint.get('type') == 'revolute':
            axis = np.array([float(v) for v in joint.find('axis').get('xyz').split()])
            rotation = np.eye(4)
            rotation[:3, :3] = Rotation.from_rotvec(axis * q[joint.get('name')]).as_matrix()
            t = t @ rotation
    return t


@pytest.mark.parametrize('arm', KNOWN_ARMS)
def test_the_urdf_forward_kinematics_equals_the_control_core(arm):
    kin = get_kinematics(arm)
    urdf = urdf_from_kinematics(kin, base_link=f'{arm}/base_link')
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(kin.lower, kin.upper)
        np.testing.assert_allclose(urdf_fk(urdf, dict(zip(kin.joint_names, q))), kin.fk(q),
                                   atol=1e-9)


def test_the_urdf_names_the_driver_joints_and_carries_their_limits():
    kin = get_kinematics('wx250s')
    root = ET.fromstring(urdf_from_kinematics(kin, base_link='wx250s/base_link').split('?>', 1)[1])
    joints = {j.get('name'): j for j in root.findall('joint') if j.get('type') == 'revolute'}
    assert list(joints) == list(kin.joint_names)
    limit = joints['shoulder'].find('limit')
    assert float(limit.get('lower')) == pytest.approx(kin.lower[1])
    assert float(limit.get('velocity')) == pytest.approx(np.pi)
    assert root.find('link').get('name') == 'wx250s/base_link'


@pytest.mark.parametrize('arm', KNOWN_ARMS)
def test_each_drawn_link_points_along_its_segment(arm):
    urdf = urdf_from_kinematics(get_kinematics(arm), base_link='b')
    root = ET.fromstring(urdf.split('?>', 1)[1])
    cylinders = 0
    for visual in root.iter('visual'):
        if visual.find('geometry/cylinder') is None:
            continue
        origin = visual.find('origin')
        middle = np.array([float(v) for v in origin.get('xyz').split()])
        rotation = _transform('0 0 0', origin.get('rpy'))[:3, :3]
        length = float(visual.find('geometry/cylinder').get('length'))
        np.testing.assert_allclose(rotation @ [0, 0, length / 2], middle, atol=1e-9)
        cylinders += 1
    assert cylinders >= 4
