"""SimWorld: commands, tracking, grasping, rendering, errors."""

from __future__ import annotations

import math
import os
import time

os.environ.setdefault('MUJOCO_GL', 'egl')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sim_loop import get_control_kinematics  # noqa: E402

from openvla_ros.sim import SimError, SimWorld  # noqa: E402


@pytest.fixture(scope='module')
def wx():
    world = SimWorld('wx250s', task='lift_block', seed=0)
    yield world
    world.close()


@pytest.mark.parametrize('robot', ['wx250s', 'panda'])
def test_arm_tracks_joint_targets(robot):
    with SimWorld(robot) as world:
        q0 = world.arm_q()
        goal = q0 + np.linspace(0.3, -0.3, len(q0))
        world.set_arm_targets(goal)
        world.step(2.0)
        assert np.max(np.abs(world.arm_q() - goal)) < 1e-2
        assert world.time == pytest.approx(2.0)


def test_velocity_limit_and_clipping(wx):
    wx.reset(seed=0)
    q0 = wx.arm_q()
    wx.set_arm_targets(q0 + 2.0)
    wx.step(0.1)
    assert np.all(np.abs(wx.arm_setpoint - q0) <= math.pi * 0.1 + 1e-9)
    wx.set_arm_targets(np.full(6, 100.0))
    np.testing.assert_allclose(wx.arm_targets, wx.spec.upper)


def test_trajectory_is_interpolated(wx):
    wx.reset(seed=0)
    q0 = wx.arm_setpoint
    goal = q0 + np.array([0.2, 0.1, -0.1, 0.0, 0.1, 0.2])
    wx.set_arm_trajectory([(0.5, goal), (1.0, goal)])
    wx.step(0.25)
    np.testing.assert_allclose(wx.arm_setpoint, q0 + 0.5 * (goal - q0), atol=1e-6)
    wx.step(1.0)
    assert np.max(np.abs(wx.arm_q() - goal)) < 1e-2
    with pytest.raises(ValueError):
        wx.set_arm_trajectory([(0.5, goal), (0.2, goal)])
    with pytest.raises(ValueError):
        wx.set_arm_trajectory([])


def test_bad_inputs_raise(wx):
    with pytest.raises(ValueError, match='6 joint values'):
        wx.set_arm_targets(np.zeros(5))
    with pytest.raises(ValueError, match='finite'):
        wx.set_arm_targets([0, 0, np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match='multiple'):
        wx.step(0.0031)
    with pytest.raises(ValueError):
        wx.step(-0.2)
    with pytest.raises(ValueError):
        wx.set_gripper(float('nan'))
    with pytest.raises(ValueError):
        SimWorld('ur5')
    with pytest.raises(ValueError, match='lift_block'):
        SimWorld('wx250s', task='stack_cups')


def test_joint_state_and_gripper(wx):
    wx.reset(seed=0)
    js = wx.joint_state()
    assert js.name == wx.joint_names + wx.finger_joint_names
    assert js.name[:6] == (
        'waist',
        'shoulder',
        'elbow',
        'forearm_roll',
        'wrist_angle',
        'wrist_rotate',
    )
    assert js.position.shape == js.velocity.shape == js.effort.shape == (8,)
    assert wx.gripper_opening() == pytest.approx(1.0, abs=0.02)
    wx.set_gripper(0.0)
    wx.step(0.5)
    np.testing.assert_allclose(wx.joint_state().position[6:], 0.015, atol=1e-3)
    wx.set_gripper_width(0.05)
    wx.step(0.5)
    np.testing.assert_allclose(wx.joint_state().position[6:], 0.025, atol=1e-3)


def test_gripper_grasps_and_lifts_block(wx):
    kin = get_control_kinematics('wx250s')
    wx.reset(seed=0)
    block = np.eye(4)
    block[:3, 3] = [0.3, 0.0, 0.0155]
    wx.set_object_pose('red_block', block)
    wx.step(0.2)
    z0 = wx.object_poses()['red_block'][2, 3]
    down = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # TCP x points down
    q = wx.arm_targets

    def go(z: float, duration: float) -> None:
        nonlocal q
        target = np.eye(4)
        target[:3, :3] = down
        target[:3, 3] = [0.3, 0.0, z]
        res = kin.ik(target, q)
        assert res.ok, res.message
        q = res.q
        wx.set_arm_targets(q)
        wx.step(duration)

    go(0.1, 1.0)
    go(0.016, 1.0)
    wx.set_gripper(0.0)
    wx.step(0.6)
    go(0.076, 1.0)
    wx.step(1.0)  # hold it up: it must not slip out
    lifted = wx.object_poses()['red_block'][2, 3] - z0
    assert lifted > 0.055
    assert wx.touching('red_block', 'gripper')
    assert wx.task.success(wx)


def test_render_and_frames_change():
    with SimWorld('wx250s', task='carrot_on_plate', seed=1) as world:
        assert world._renderer is None  # lazy: physics-only users do not pay for it
        img = world.render()
        assert img.shape == (480, 640, 3) and img.dtype == np.uint8
        assert img.std() > 20 and len(np.unique(img.reshape(-1, 3), axis=0)) > 500
        world.set_arm_targets(world.arm_q() + np.array([0.4, 0.3, -0.2, 0.0, 0.3, 0.0]))
        world.step(0.6)
        img2 = world.render()
        assert np.mean(np.abs(img2.astype(int) - img.astype(int))) > 1.0


def test_camera_projection_hits_object():
    """Projecting an object's centre with camera_pose() and K lands on its colour."""
    with SimWorld('wx250s', task='lift_block', seed=2) as world:
        img = world.render()
        info = world.camera_info()
        cam = world.camera_pose()
        for name, channel in (('red_block', 0), ('green_block', 1), ('blue_block', 2)):
            p = world.object_poses()[name][:3, 3] + [0, 0, 0.015]  # top face centre
            pc = cam[:3, :3].T @ (p - cam[:3, 3])
            assert pc[2] > 0
            u = info.fx * pc[0] / pc[2] + info.cx
            v = info.fy * pc[1] / pc[2] + info.cy
            pix = img[int(v), int(u)].astype(int)
            assert np.argmax(pix) == channel, (name, pix)


def test_segmentation_shows_each_object_where_the_camera_sees_it():
    """segment() labels the pixels of each named body: the projection of a block's top face
    lies in its own class, the classes' pixels have the render's colour, the rest is -1."""
    with SimWorld('wx250s', task='lift_block', seed=2, image_size=(240, 320)) as world:
        img = world.render()
        names = ('red_block', 'green_block', 'blue_block', 'gripper')
        labels = world.segment(names)
        assert labels.shape == (240, 320) and labels.dtype == np.int16
        assert set(np.unique(labels)) == {-1, 0, 1, 2, 3}  # all four in view, table is -1
        info, cam = world.camera_info(), world.camera_pose()
        for k, name in enumerate(names[:3]):
            p = world.object_poses()[name][:3, 3] + [0, 0, 0.015]  # top face centre
            pc = cam[:3, :3].T @ (p - cam[:3, 3])
            u, v = info.fx * pc[0] / pc[2] + info.cx, info.fy * pc[1] / pc[2] + info.cy
            assert labels[int(v), int(u)] == k, name
            colour = img[labels == k].astype(float).mean(0)
            assert np.argmax(colour) == k, (name, colour)  # red, green, blue
        assert 0 < (labels == 0).mean() < 0.02  # a block is a few hundred pixels
        with pytest.raises(ValueError, match='unknown body'):
            world.segment(('no_such_body',))


def test_physics_faster_than_real_time(wx):
    wx.reset(seed=0)
    wx.set_arm_targets(wx.arm_q() + 0.3)
    start = time.perf_counter()
    wx.step(0.2)
    assert time.perf_counter() - start < 0.1


def test_close_then_use_raises():
    world = SimWorld('panda')
    world.render()
    world.close()
    world.close()
    with pytest.raises(SimError):
        world.step(0.2)
