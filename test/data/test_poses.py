"""One pose conversion (``openvla_ros.msgio.poses``) for the nodes and the bag reader, and its one
rule: a zero or non-finite quaternion (or position) is no pose and raises InvalidPoseError.

Property tests over quaternions of any scale; the bag reader's readable error on a real bag."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

from hypothesis import assume, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from synthetic_bags import image_at

from openvla_ros.data import BagReadError, episodes_from_bags, RecordConfig
from openvla_ros.msgio.poses import (
    InvalidPoseError,
    matrix_to_position_quaternion,
    MIN_QUATERNION_NORM,
    pose_to_matrix,
    quaternion_to_rotation,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
components = st.floats(allow_nan=False, allow_infinity=False)
scales = st.floats(min_value=1e-6, max_value=1e6)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])


def pose(position, quaternion) -> SimpleNamespace:
    """Any object with Pose's fields (the nodes pass rclpy messages, the bag reader rosbags')."""
    x, y, z = position
    qx, qy, qz, qw = quaternion
    return SimpleNamespace(
        position=SimpleNamespace(x=x, y=y, z=z),
        orientation=SimpleNamespace(x=qx, y=qy, z=qz, w=qw),
    )


@st.composite
def unit_quaternions(draw) -> np.ndarray:
    q = np.array(draw(st.tuples(*[st.floats(-1.0, 1.0)] * 4)))
    assume(np.linalg.norm(q) > 0.1)
    return q / np.linalg.norm(q)


def assert_rigid(matrix: np.ndarray) -> None:
    rot = matrix[:3, :3]
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(matrix[3], [0.0, 0.0, 0.0, 1.0])


@settings(max_examples=300, deadline=None)
@given(st.tuples(finite, finite, finite), unit_quaternions())
def test_matrix_to_fields_and_back_is_the_identity(position, q):
    matrix = pose_to_matrix(pose(position, q))
    assert_rigid(matrix)
    np.testing.assert_array_equal(matrix[:3, 3], position)
    back_position, back_q = matrix_to_position_quaternion(matrix)
    again = pose_to_matrix(pose(back_position, back_q))
    np.testing.assert_allclose(again, matrix, atol=1e-12)
    # the quaternion back is q or -q (the same rotation)
    assert min(np.abs(np.subtract(back_q, q)).max(), np.abs(np.add(back_q, q)).max()) < 1e-9


@settings(max_examples=300, deadline=None)
@given(st.tuples(*[components] * 4))
def test_any_quaternion_of_nonzero_norm_is_normalised_to_a_rotation(q):
    norm = math.hypot(*q)
    assume(norm >= 2 * MIN_QUATERNION_NORM)  # hypot: inf for huge components, still valid
    rot = quaternion_to_rotation(*q)
    assert np.all(np.isfinite(rot))
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(unit_quaternions(), scales)
def test_scaling_or_negating_a_quaternion_changes_nothing(q, scale):
    rot = quaternion_to_rotation(*q)
    np.testing.assert_allclose(quaternion_to_rotation(*(q * scale)), rot, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_rotation(*(-q)), rot, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.tuples(*[st.floats(-1e-10, 1e-10)] * 4))
def test_a_zero_or_tiny_quaternion_raises_and_never_gives_nan(q):
    assume(math.hypot(*q) < 0.5 * MIN_QUATERNION_NORM)
    with pytest.raises(InvalidPoseError, match='no orientation'):
        pose_to_matrix(pose((0.3, 0.0, 0.2), q))


@settings(max_examples=200, deadline=None)
@given(st.tuples(*[components] * 4), st.integers(0, 3), non_finite)
def test_a_non_finite_quaternion_raises(q, index, bad):
    q = list(q)
    q[index] = bad
    with pytest.raises(InvalidPoseError, match='not finite'):
        pose_to_matrix(pose((0.3, 0.0, 0.2), q))


@settings(max_examples=100, deadline=None)
@given(st.tuples(finite, finite, finite), st.integers(0, 2), non_finite, unit_quaternions())
def test_a_non_finite_position_raises(position, index, bad, q):
    position = list(position)
    position[index] = bad
    with pytest.raises(InvalidPoseError, match='position'):
        pose_to_matrix(pose(position, q))


def test_invalid_pose_error_is_a_value_error_with_the_numbers():
    with pytest.raises(ValueError, match=r'\(0, 0, 0, 0\)'):
        quaternion_to_rotation(0.0, 0.0, 0.0, 0.0)


def test_nodes_bags_and_rclpy_messages_share_the_one_conversion():
    from geometry_msgs.msg import Point, Pose, Quaternion  # noqa: PLC0415

    from openvla_ros.msgio import fields as messages  # noqa: PLC0415
    from openvla_ros.nodes import _conversions  # noqa: PLC0415

    assert messages.pose_to_matrix is pose_to_matrix
    assert _conversions.pose_to_matrix is pose_to_matrix
    q = np.array([0.1, -0.2, 0.3, 0.9]) / np.linalg.norm([0.1, -0.2, 0.3, 0.9])
    msg = Pose(
        position=Point(x=0.3, y=-0.1, z=0.2),
        orientation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3]),
    )
    np.testing.assert_array_equal(pose_to_matrix(msg), pose_to_matrix(pose((0.3, -0.1, 0.2), q)))
    back = _conversions.matrix_to_pose(pose_to_matrix(msg))
    np.testing.assert_allclose(pose_to_matrix(back), pose_to_matrix(msg), atol=1e-12)


def write_bag_with_a_zero_quaternion(path: Path) -> Path:
    """A short bag: frames, an instruction and EndEffectorTargets; the 6th target has the
    quaternion (0, 0, 0, 0) (an unset Pose.orientation)."""
    from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: PLC0415

    from openvla_ros.msgio.fields import make_typestore  # noqa: PLC0415

    store = make_typestore()
    types = store.types
    ns = 1_000_000_000
    ee = 'openvla_ros/msg/EndEffectorTarget'

    def header(t: int):
        stamp = types['builtin_interfaces/msg/Time'](sec=t // ns, nanosec=t % ns)
        return types['std_msgs/msg/Header'](stamp=stamp, frame_id='wx250s/base_link')

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image_conn = writer.add_connection(
            '/camera/image_raw', 'sensor_msgs/msg/Image', typestore=store
        )
        text_conn = writer.add_connection('/instruction', 'std_msgs/msg/String', typestore=store)
        ee_conn = writer.add_connection('/openvla/safe_ee_target', ee, typestore=store)
        text = types['std_msgs/msg/String'](data='lift the block')
        writer.write(text_conn, 0, store.serialize_cdr(text, 'std_msgs/msg/String'))
        for i in range(10):
            t = i * ns // 10
            frame = image_at(i)
            image = types['sensor_msgs/msg/Image'](
                header=header(t),
                height=frame.shape[0],
                width=frame.shape[1],
                encoding='rgb8',
                is_bigendian=0,
                step=frame.shape[1] * 3,
                data=frame.reshape(-1),
            )
            writer.write(image_conn, t, store.serialize_cdr(image, 'sensor_msgs/msg/Image'))
            w = 0.0 if i == 5 else 1.0
            target = types[ee](
                header=header(t),
                pose=types['geometry_msgs/msg/Pose'](
                    position=types['geometry_msgs/msg/Point'](x=0.3 + 0.01 * i, y=0.0, z=0.2),
                    orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=w),
                ),
                gripper=1.0,
                hold=False,
            )
            writer.write(ee_conn, t, store.serialize_cdr(target, ee))
    return path


def test_the_bag_reader_reports_a_zero_quaternion_as_a_readable_bag_error(tmp_path):
    bag = write_bag_with_a_zero_quaternion(tmp_path / 'bag')
    with pytest.raises(BagReadError) as info:
        episodes_from_bags([bag], RecordConfig.from_profile('widowx_bridge'))
    text = str(info.value)
    assert 'InvalidPoseError' in text and '(0, 0, 0, 0)' in text and 'no orientation' in text
    assert str(bag) in text
