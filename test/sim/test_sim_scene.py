"""Scene generation: models compile, kinematics match the published models and control/."""

from __future__ import annotations

import os

os.environ.setdefault('MUJOCO_GL', 'egl')

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from sim_loop import get_control_kinematics  # noqa: E402

from openvla_ros.sim import build_scene_xml, OBJECTS, robot_spec, SimWorld  # noqa: E402


def _site_pose(model: mujoco.MjModel, data: mujoco.MjData, spec, q: np.ndarray) -> np.ndarray:
    for name, value in zip(spec.joint_names, q):
        data.qpos[model.joint(name).qposadr[0]] = value
    mujoco.mj_kinematics(model, data)
    sid = model.site('ee').id
    pose = np.eye(4)
    pose[:3, :3] = data.site_xmat[sid].reshape(3, 3)
    pose[:3, 3] = data.site_xpos[sid]
    return pose


@pytest.mark.parametrize('robot', ['wx250s', 'panda', 'fr3'])
def test_scene_builds_with_all_objects(robot):
    spec = robot_spec(robot)
    model = mujoco.MjModel.from_xml_string(build_scene_xml(robot, list(OBJECTS)))
    for name in spec.joint_names + spec.finger_joint_names:
        model.joint(name)  # raises KeyError when missing
    assert model.nu == len(spec.joint_names) + 1
    assert model.nbody >= len(OBJECTS) + len(spec.joint_names)
    np.testing.assert_allclose(
        model.jnt_range[[model.joint(n).id for n in spec.joint_names]],
        np.stack([spec.lower, spec.upper], axis=1),
        atol=1e-6,
    )


def test_unknown_names_raise():
    with pytest.raises(ValueError, match='ur5'):
        robot_spec('ur5')
    with pytest.raises(ValueError, match='banana'):
        build_scene_xml('wx250s', ['banana'])
    with pytest.raises(ValueError, match='image_size'):
        build_scene_xml('wx250s', image_size=(0, 640))


def test_wx250s_home_pose_is_interbotix_m():
    spec = robot_spec('wx250s')
    model = mujoco.MjModel.from_xml_string(build_scene_xml('wx250s'))
    data = mujoco.MjData(model)
    pose = _site_pose(model, data, spec, np.zeros(6))
    m = np.array([[1, 0, 0, 0.458325], [0, 1, 0, 0], [0, 0, 1, 0.36065], [0, 0, 0, 1]])
    np.testing.assert_allclose(pose, m, atol=1e-9)


def test_wx250s_start_pose_is_openvla_start_pose():
    spec = robot_spec('wx250s')
    model = mujoco.MjModel.from_xml_string(build_scene_xml('wx250s'))
    pose = _site_pose(model, mujoco.MjData(model), spec, spec.start_q)
    np.testing.assert_allclose(pose[:3, 3], [0.3, -0.09, 0.26], atol=1e-4)
    want = Rotation.from_quat([0.0, -0.259, 0.0, -0.966])
    err = (Rotation.from_matrix(pose[:3, :3]) * want.inv()).magnitude()
    assert err < 1e-3


def test_panda_tcp_at_zero_and_gripper_width():
    spec = robot_spec('panda')
    model = mujoco.MjModel.from_xml_string(build_scene_xml('panda'))
    pose = _site_pose(model, mujoco.MjData(model), spec, np.zeros(7))
    # q = 0: flange at x = 0.088, z = 0.333 + 0.316 + 0.384 - 0.107; TCP 0.1034 below it
    np.testing.assert_allclose(pose[:3, 3], [0.088, 0.0, 0.926 - 0.1034], atol=1e-9)
    assert spec.finger_width_range == (0.0, 0.08)


@pytest.mark.parametrize('robot', ['wx250s', 'panda', 'fr3'])
def test_tcp_matches_control_kinematics(robot):
    kin = get_control_kinematics(robot)
    spec = robot_spec(robot)
    model = mujoco.MjModel.from_xml_string(build_scene_xml(robot))
    data = mujoco.MjData(model)
    rng = np.random.default_rng(7)
    for _ in range(50):
        q = rng.uniform(spec.lower, spec.upper)
        mj = _site_pose(model, data, spec, q)
        ref = kin.fk(q)
        assert np.linalg.norm(mj[:3, 3] - ref[:3, 3]) < 1e-3, q
        assert Rotation.from_matrix(mj[:3, :3] @ ref[:3, :3].T).magnitude() < 1e-3, q


def test_camera_intrinsics_consistent_with_fovy():
    with SimWorld('wx250s', image_size=(240, 320)) as world:
        info = world.camera_info()
        assert (info.width, info.height) == (320, 240)
        assert info.fy == pytest.approx(120.0 / np.tan(np.radians(info.fovy_deg) / 2))
        assert info.fx == info.fy and (info.cx, info.cy) == (160.0, 120.0)
        assert info.k.shape == (3, 3) and info.frame_id
