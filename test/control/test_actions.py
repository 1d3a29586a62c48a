"""Action semantics: the bridge_orig composition, its inverse, gripper conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openvla_ros.control.actions import (
    apply_delta,
    BRIDGE_ACTION_HIGH,
    BRIDGE_ACTION_LOW,
    delta_between,
    get_action_space,
    gripper_from_opening,
    gripper_to_opening,
    GripperConvention,
)


def _rot_x(a: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _rot_y(a: float) -> np.ndarray:
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _rot_z(a: float) -> np.ndarray:
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def test_bridge_delta_matches_the_hand_computed_composition():
    previous = np.eye(4)
    previous[:3, :3] = _rot_y(0.5)
    previous[:3, 3] = [0.3, -0.09, 0.26]
    action = np.array([0.01, -0.02, 0.03, 0.1, -0.2, 0.3, 1.0])
    result = apply_delta(previous, action)
    # extrinsic x-y-z: R = Rz(yaw) Ry(pitch) Rx(roll), applied on the left (base-frame axes)
    expected_rotation = _rot_z(0.3) @ _rot_y(-0.2) @ _rot_x(0.1) @ _rot_y(0.5)
    np.testing.assert_allclose(result[:3, :3], expected_rotation, atol=1e-12)
    np.testing.assert_allclose(result[:3, 3], [0.31, -0.11, 0.29], atol=1e-12)
    np.testing.assert_array_equal(result[3], [0, 0, 0, 1])


def test_bridge_rotation_turns_about_the_end_effector_point_not_the_base_origin():
    previous = np.eye(4)
    previous[:3, 3] = [0.3, 0.1, 0.2]
    result = apply_delta(previous, [0, 0, 0, 0, 0, 0.25, 1])
    np.testing.assert_allclose(result[:3, 3], previous[:3, 3])


def test_delta_between_inverts_apply_delta():
    rng = np.random.default_rng(0)
    previous = np.eye(4)
    previous[:3, :3] = _rot_z(1.0) @ _rot_x(0.4)
    previous[:3, 3] = [0.2, 0.1, 0.15]
    for _ in range(50):
        delta = rng.uniform(BRIDGE_ACTION_LOW[:6], BRIDGE_ACTION_HIGH[:6])
        result = apply_delta(previous, np.append(delta, 1.0))
        np.testing.assert_allclose(delta_between(previous, result), delta, atol=1e-10)


def test_droid_scales_unit_velocities_to_its_per_step_maxima():
    result = apply_delta(np.eye(4), [1, -1, 0.5, 0, 0, 1, 0], action_space='droid')
    np.testing.assert_allclose(result[:3, 3], [0.075, -0.075, 0.0375])
    np.testing.assert_allclose(result[:3, :3], _rot_z(0.15), atol=1e-12)
    np.testing.assert_allclose(delta_between(np.eye(4), result, 'droid'), [1, -1, 0.5, 0, 0, 1])


def test_bridge_clip_bounds_are_the_bridge_environment_values():
    space = get_action_space('bridge_orig')
    clipped = space.clip(np.array([0.2, -0.2, 0.01, 1.0, -1.0, 0.1, 3.0]))
    np.testing.assert_allclose(clipped, [0.05, -0.05, 0.01, 0.25, -0.25, 0.1, 1.0])


@pytest.mark.parametrize(('value', 'convention', 'opening'), [
    (1.0, GripperConvention.OPEN_IS_ONE, 1.0),
    (0.0, GripperConvention.OPEN_IS_ONE, 0.0),
    (1.0, GripperConvention.CLOSED_IS_ONE, 0.0),
    (0.25, GripperConvention.CLOSED_IS_ONE, 0.75),
    (1.0, GripperConvention.SIGNED, 1.0),
    (-1.0, GripperConvention.SIGNED, 0.0),
    (5.0, GripperConvention.OPEN_IS_ONE, 1.0),
])
def test_gripper_conventions_map_to_the_normalized_opening(value, convention, opening):
    assert gripper_to_opening(value, convention) == pytest.approx(opening)
    assert gripper_to_opening(gripper_from_opening(opening, convention), convention) == (
        pytest.approx(opening)
    )


def test_gripper_convention_numbers_match_the_action_chunk_message():
    assert [int(c) for c in GripperConvention] == [0, 1, 2]
    with pytest.raises(ValueError):
        gripper_to_opening(1.0, 7)


def test_unknown_action_space_lists_the_known_ones():
    message = "unknown action space 'fractal2'; known: bridge_orig, droid"
    with pytest.raises(ValueError, match=message):
        apply_delta(np.eye(4), np.zeros(7), 'fractal2')
