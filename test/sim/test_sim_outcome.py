"""Episode outcomes: each failure is named after the first stage of its task it did not get
through, from the simulator's state tick by tick (a scripted scene, then the real world)."""

from __future__ import annotations

import os

os.environ.setdefault('MUJOCO_GL', 'egl')

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from openvla_ros.sim import get_task, SimWorld  # noqa: E402
from openvla_ros.sim.outcome import (  # noqa: E402
    count_failures,
    describe_failures,
    EpisodeTrace,
    LIFTED_M,
    OUTCOMES,
)


def _pose(x: float, y: float, z: float) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, 3] = [x, y, z]
    return pose


class ScriptedScene:
    """A scene whose state the test sets tick by tick."""

    def __init__(self, poses: dict[str, np.ndarray], tcp: np.ndarray) -> None:
        self.poses = poses
        self.tcp = tcp
        self.contacts: set[str] = set()  # objects the fingers touch now
        self.opening = 1.0

    def object_poses(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.poses.items()}

    def touching(self, body_a: str, body_b: str) -> bool:
        return body_b == 'gripper' and body_a in self.contacts  # nothing rests on the plate

    def ee_pose(self) -> np.ndarray:
        return self.tcp.copy()

    def gripper_opening(self) -> float:
        return self.opening


def _lift_scene() -> ScriptedScene:
    poses = {
        'red_block': _pose(0.30, 0.00, 0.015),
        'green_block': _pose(0.30, 0.10, 0.015),
        'blue_block': _pose(0.30, -0.10, 0.015),
    }
    return ScriptedScene(poses, _pose(0.30, 0.00, 0.20))


def test_a_policy_that_never_touches_the_block_missed_it_by_its_closest_approach():
    task = get_task('lift_block')
    scene, trace = _lift_scene(), EpisodeTrace(task)
    for z in (0.20, 0.10, 0.06, 0.12):  # comes down to 4.5 cm above the block, then leaves
        scene.tcp = _pose(0.30, 0.00, z)
        assert trace(scene) is False
    summary = trace.summary(success=False)
    assert summary['outcome'] == 'missed'
    assert summary['closest_m'] == pytest.approx(0.045, abs=1e-6)
    assert summary['max_rise_m'] == 0.0 and summary['touched_others'] == []
    assert summary['place_error_m'] is None  # a lift has no place target
    assert trace.ticks == 4


def test_grasping_the_wrong_block_is_a_miss_that_names_the_block():
    task = get_task('lift_block')
    scene, trace = _lift_scene(), EpisodeTrace(task)
    trace(scene)
    scene.contacts = {'green_block'}
    scene.poses['green_block'][2, 3] += 0.08
    trace(scene)
    summary = trace.summary(success=False)
    assert summary['outcome'] == 'missed' and summary['touched_others'] == ['green_block']
    assert summary['max_rise_m'] == 0.0  # the red block did not move


def test_touching_without_lifting_then_lifting_short_then_success():
    task = get_task('lift_block')
    scene, trace = _lift_scene(), EpisodeTrace(task)
    trace(scene)
    scene.contacts = {'red_block'}
    scene.poses['red_block'][2, 3] += LIFTED_M / 2  # pushed up a little, not lifted
    trace(scene)
    assert trace.outcome(False) == 'not_lifted'
    scene.poses['red_block'][2, 3] += 0.03  # 3.5 cm up: short of the task's 5 cm
    assert trace(scene) is False
    assert trace.outcome(False) == 'lifted_short'
    assert trace.summary(False)['max_rise_m'] == pytest.approx(0.035, abs=1e-6)
    scene.poses['red_block'][2, 3] += 0.03  # the bottom 6.5 cm above the table
    assert trace(scene) is True  # the task's own predicate
    assert trace.outcome(True) == 'success'


def test_a_carrot_carried_but_put_down_beside_the_plate_is_not_placed():
    task = get_task('carrot_on_plate')
    poses = {
        'carrot': _pose(0.30, 0.10, 0.012),
        'plate': _pose(0.30, -0.10, 0.008),
        'green_block': _pose(0.40, 0.00, 0.015),
    }
    scene, trace = ScriptedScene(poses, _pose(0.30, 0.10, 0.10)), EpisodeTrace(task)
    trace(scene)
    scene.contacts = {'carrot'}
    scene.poses['carrot'][:3, 3] = [0.30, 0.0, 0.08]  # carried half way
    trace(scene)
    scene.contacts = set()
    scene.poses['carrot'][:3, 3] = [0.30, -0.02, 0.012]  # dropped 8 cm short of the plate centre
    assert trace(scene) is False
    summary = trace.summary(success=False)
    assert summary['outcome'] == 'not_placed'
    assert summary['place_error_m'] == pytest.approx(0.08, abs=1e-6)


def test_each_closing_of_the_fingers_is_one_grasp():
    scene, trace = _lift_scene(), EpisodeTrace(get_task('lift_block'))
    for opening in (1.0, 0.5, 0.1, 0.0, 0.3, 0.0, 0.7, 0.4, 0.2, 0.1, 0.9, 0.9):
        scene.opening = opening  # closes, wavers shut, opens, closes, opens
        trace(scene)
    assert trace.grasps == 2 and trace.summary(False)['grasps'] == 2


def test_failures_are_counted_in_pipeline_order_without_successes():
    outcomes = ['not_placed', 'success', 'missed', 'missed', 'lifted_short']
    counts = count_failures(outcomes)
    assert list(counts) == ['missed', 'lifted_short', 'not_placed']
    assert counts == {'missed': 2, 'lifted_short': 1, 'not_placed': 1}
    assert describe_failures(counts) == '2 missed, 1 lifted_short, 1 not_placed'
    assert count_failures(['success']) == {} and describe_failures({}) == ''
    assert set(counts) <= set(OUTCOMES)


def test_the_trace_reads_the_real_world():
    with SimWorld('wx250s', task='lift_block', seed=3) as world:
        trace = EpisodeTrace(world.task)
        assert trace(world) is False
        block = world.object_poses()['red_block']
        tcp = world.ee_pose()
        assert trace.closest_m == pytest.approx(np.linalg.norm(tcp[:3, 3] - block[:3, 3]))
        assert not trace.touched and trace.max_rise_m == pytest.approx(0.0, abs=1e-9)
        block[2, 3] += 0.03
        world.set_object_pose('red_block', block)
        trace(world)
        assert trace.max_rise_m == pytest.approx(0.03, abs=1e-4)
        assert math.isnan(trace.place_error_m)
        assert trace.grasps == 0
        world.set_gripper(0.0)
        for _ in range(10):
            world.step(0.05)
            trace(world)
        assert trace.grasps == 1, world.gripper_opening()
