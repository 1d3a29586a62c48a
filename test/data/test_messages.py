"""Bag frames decode with the policy node's decoder: the same pixels, the same refusals."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from openvla_ros.data.errors import BagReadError
from openvla_ros.msgio.fields import decode_image
from openvla_ros.msgio.images import raw_to_rgb


def _image(encoding: str, height: int, width: int, data: bytes, step: int | None = None):
    channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}[encoding]
    return SimpleNamespace(encoding=encoding, height=height, width=width,
                           step=width * channels if step is None else step, data=data)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'mono8'])
def test_a_bag_frame_gives_the_pixels_the_policy_node_sees(encoding: str) -> None:
    channels = 1 if encoding == 'mono8' else 3
    data = np.random.default_rng(0).integers(0, 256, 4 * 5 * channels, dtype=np.uint8).tobytes()
    msg = _image(encoding, 4, 5, data)
    np.testing.assert_array_equal(decode_image(msg, 'sensor_msgs/msg/Image'),
                                  raw_to_rgb(encoding, 4, 5, msg.step, data))


def test_a_bag_frame_with_more_bytes_than_its_header_says_is_refused() -> None:
    # the bag reader used to accept a buffer larger than height * step (a looser check than the
    # node's): a frame whose header and data disagree is refused in both places now
    msg = _image('rgb8', 4, 5, bytes(4 * 5 * 3 + 7))
    with pytest.raises(BagReadError, match='expected height\\*step'):
        decode_image(msg, 'sensor_msgs/msg/Image')


def test_a_compressed_bag_frame_that_does_not_decode_is_a_bag_error() -> None:
    msg = SimpleNamespace(format='jpeg', data=b'not a jpeg')
    with pytest.raises(BagReadError, match='could not decode compressed image'):
        decode_image(msg, 'sensor_msgs/msg/CompressedImage')
