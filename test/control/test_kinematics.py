"""Kinematics: FK against published poses, IK round trips, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openvla_ros.control.kinematics import (
    FRANKA_DH,
    FRANKA_FLANGE_D,
    get_kinematics,
    IK_JOINT_LIMIT,
    IK_NON_FINITE,
    IK_VELOCITY_LIMIT,
    pose_error,
)

READY = [0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4]


def _dh_flange(q: np.ndarray) -> np.ndarray:
    """Independent modified-DH forward kinematics (Craig's convention) for the cross-check."""
    t = np.eye(4)
    for (a, d, alpha), theta in zip(FRANKA_DH, q):
        ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
        t = t @ np.array([
            [ct, -st, 0.0, a],
            [st * ca, ct * ca, -sa, -d * sa],
            [st * sa, ct * sa, ca, d * ca],
            [0.0, 0.0, 0.0, 1.0],
        ])
    flange = np.eye(4)
    flange[2, 3] = FRANKA_FLANGE_D
    return t @ flange


def test_widowx_fk_at_zero_equals_the_interbotix_home_pose_exactly():
    kin = get_kinematics('wx250s')
    expected = np.array([[1, 0, 0, 0.458325], [0, 1, 0, 0], [0, 0, 1, 0.36065], [0, 0, 0, 1.0]])
    np.testing.assert_array_equal(kin.fk(np.zeros(6)), expected)


@pytest.mark.parametrize('name', ['panda', 'fr3'])
def test_franka_ready_pose_matches_the_published_flange_and_hand_tcp(name):
    # Flange (panda_link8 / panda_hand origin) at the ready pose from MoveIt's panda URDF:
    # (0.306890566, 0.0, 0.590282052) m, pointing down; the hand TCP is 0.1034 m lower
    # (libfranka O_T_EE at the ready pose: x = 0.307, z = 0.487, R = diag(1, -1, -1)).
    kin = get_kinematics(name)
    flange = kin.fk_flange(READY)
    np.testing.assert_allclose(flange[:3, 3], [0.306890566, 0.0, 0.590282052], atol=1e-6)
    tcp = kin.fk(READY)
    np.testing.assert_allclose(tcp[:3, 3], [0.306890566, 0.0, 0.590282052 - 0.1034], atol=1e-6)
    np.testing.assert_allclose(tcp[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-9)


def test_franka_poe_agrees_with_an_independent_dh_implementation():
    kin = get_kinematics('panda')
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.uniform(kin.lower, kin.upper)
        np.testing.assert_allclose(kin.fk_flange(q), _dh_flange(q), atol=1e-12)


def test_get_kinematics_lists_the_known_arms_for_an_unknown_name():
    with pytest.raises(ValueError, match="unknown arm 'ur5'; known arms: fr3, panda, wx250s"):
        get_kinematics('ur5')


@pytest.mark.parametrize('name', ['wx250s', 'panda', 'fr3'])
def test_ik_round_trips_random_reachable_poses_from_a_perturbed_seed(name):
    kin = get_kinematics(name)
    rng = np.random.default_rng(7)
    solved = 0
    trials = 40
    for _ in range(trials):
        q = rng.uniform(kin.lower, kin.upper)
        target = kin.fk(q)
        seed = np.clip(q + rng.normal(0.0, 0.1, kin.dof), kin.lower, kin.upper)
        result = kin.ik(target, seed)
        if not result.ok:
            continue
        solved += 1
        assert kin.within_limits(result.q)
        position_error, orientation_error = pose_error(kin.fk(result.q), target)
        assert position_error <= kin.position_tolerance
        assert orientation_error <= kin.orientation_tolerance
    assert solved >= 0.95 * trials


def test_ik_rejects_an_unreachable_pose_without_returning_joints():
    kin = get_kinematics('wx250s')
    target = np.eye(4)
    target[:3, 3] = [1.5, 0.0, 0.3]
    result = kin.ik(target, np.zeros(6))
    assert not result.ok
    assert result.q is None
    assert result.reason == 'IK_NO_CONVERGENCE'
    assert 'position error' in result.message


def test_ik_reports_the_joint_that_blocks_a_pose_beyond_its_limit():
    kin = get_kinematics('wx250s')
    q = np.zeros(6)
    q[1] = math.radians(125.0)  # shoulder beyond its 114 deg limit, pose otherwise reachable
    target = kin.fk(q)
    result = kin.ik(target, q - np.array([0, 0.05, 0, 0, 0, 0]))
    assert not result.ok
    assert result.q is None
    assert result.reason in (IK_JOINT_LIMIT, 'IK_NO_CONVERGENCE')
    if result.reason == IK_JOINT_LIMIT:
        assert 'limit' in result.message


def test_ik_rejects_a_solution_faster_than_the_velocity_limit():
    kin = get_kinematics('wx250s')
    seed = np.zeros(6)
    q = np.array([0.5, 0.1, -0.1, 0.0, 0.2, 0.0])
    result = kin.ik(kin.fk(q), seed, dt=0.02)  # 0.5 rad in 20 ms = 25 rad/s > pi rad/s
    assert not result.ok
    assert result.q is None
    assert result.reason == IK_VELOCITY_LIMIT
    assert 'waist' in result.message
    assert kin.ik(kin.fk(q), seed, dt=1.0).ok


def test_ik_refuses_non_finite_targets_and_seeds():
    kin = get_kinematics('panda')
    target = kin.fk(READY)
    target[0, 3] = math.nan
    assert kin.ik(target, READY).reason == IK_NON_FINITE
    seed = np.array(READY)
    seed[2] = math.inf
    assert kin.ik(kin.fk(READY), seed).reason == IK_NON_FINITE


def test_ik_raises_for_a_seed_of_the_wrong_shape():
    kin = get_kinematics('panda')
    with pytest.raises(ValueError, match=r'q must have shape \(7,\)'):
        kin.ik(np.eye(4), np.zeros(6))


def test_ik_never_returns_ok_with_a_joint_outside_the_limits():
    kin = get_kinematics('wx250s')
    rng = np.random.default_rng(11)
    for _ in range(30):
        q = rng.uniform(kin.lower - 0.5, kin.upper + 0.5)
        result = kin.ik(kin.fk(q), np.clip(q, kin.lower, kin.upper))
        if result.ok:
            assert kin.within_limits(result.q)
            assert pose_error(kin.fk(result.q), kin.fk(q))[0] <= kin.position_tolerance
