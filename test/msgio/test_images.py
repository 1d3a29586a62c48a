"""Camera frames to RGB: every supported encoding is exact, every bad frame names its problem."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from openvla_ros.msgio.images import (
    compressed_to_rgb,
    ImageDecodeError,
    jpeg_roundtrip,
    raw_to_rgb,
    SUPPORTED_ENCODINGS,
)

RGB = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)


def encode(rgb: np.ndarray, encoding: str, pad: int = 0) -> tuple[int, bytes]:
    if encoding == 'rgb8':
        pixels = rgb
    elif encoding == 'bgr8':
        pixels = rgb[:, :, ::-1]
    elif encoding == 'rgba8':
        pixels = np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])
    elif encoding == 'bgra8':
        pixels = np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 9, np.uint8)])
    else:
        pixels = rgb[:, :, :1]
    rows = pixels.reshape(rgb.shape[0], -1)
    rows = np.hstack([rows, np.zeros((rows.shape[0], pad), np.uint8)])
    return rows.shape[1], rows.tobytes()


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
@pytest.mark.parametrize('pad', [0, 3])
def test_colour_encodings_convert_exactly_with_and_without_row_padding(encoding, pad):
    step, data = encode(RGB, encoding, pad)
    out = raw_to_rgb(encoding, 5, 7, step, data)
    np.testing.assert_array_equal(out, RGB)
    assert out.dtype == np.uint8 and out.flags.c_contiguous


def test_mono8_is_replicated_to_three_channels():
    step, data = encode(RGB, 'mono8')
    out = raw_to_rgb('mono8', 5, 7, step, data)
    np.testing.assert_array_equal(out, np.repeat(RGB[:, :, :1], 3, axis=2))


def test_rclpy_style_array_buffers_are_accepted_and_the_result_is_a_writable_copy():
    step, data = encode(RGB, 'rgb8')
    out = raw_to_rgb('rgb8', 5, 7, step, array.array('B', data))
    np.testing.assert_array_equal(out, RGB)
    out[0, 0, 0] = 0  # a copy: the message buffer is untouched
    assert out.flags.writeable


def test_unsupported_encodings_are_named_with_the_supported_list():
    with pytest.raises(ImageDecodeError, match=r"unsupported image encoding '32FC1'.*bgr8"):
        raw_to_rgb('32FC1', 5, 7, 28, bytes(140))
    assert SUPPORTED_ENCODINGS == ('bgr8', 'bgra8', 'mono8', 'rgb8', 'rgba8')


@pytest.mark.parametrize(
    'height,width,step,size,match',
    [
        (0, 7, 21, 0, 'empty image'),
        (5, 7, 20, 100, 'step 20 is smaller than width\\*channels = 21'),
        (5, 7, 21, 104, 'image data has 104 bytes, expected height\\*step = 5\\*21 = 105'),
    ],
)
def test_malformed_headers_are_refused_with_the_numbers(height, width, step, size, match):
    with pytest.raises(ImageDecodeError, match=match):
        raw_to_rgb('rgb8', height, width, step, bytes(size))


SMOOTH = np.dstack(
    [
        np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1)),
        np.full((48, 64), 30, np.uint8),
        np.full((48, 64), 200, np.uint8),
    ]
)


def test_png_frames_decode_to_the_exact_rgb_pixels():
    ok, encoded = cv2.imencode('.png', np.ascontiguousarray(RGB[:, :, ::-1]))
    assert ok
    np.testing.assert_array_equal(compressed_to_rgb('png', encoded.tobytes()), RGB)


def test_jpeg_frames_decode_to_rgb_not_bgr():
    ok, encoded = cv2.imencode('.jpg', np.ascontiguousarray(SMOOTH[:, :, ::-1]))
    assert ok
    out = compressed_to_rgb('jpeg', encoded.tobytes())
    assert out.shape == SMOOTH.shape
    assert np.abs(out.astype(int) - SMOOTH.astype(int)).mean() < 4  # R, G, B in the right places


def test_broken_compressed_frames_are_refused():
    with pytest.raises(ImageDecodeError, match='could not decode compressed image'):
        compressed_to_rgb('jpeg', b'not a jpeg at all')
    with pytest.raises(ImageDecodeError, match='empty compressed image'):
        compressed_to_rgb('jpeg', b'')


def test_jpeg_roundtrip_keeps_shape_and_changes_pixels_only_a_little():
    out = jpeg_roundtrip(SMOOTH)
    assert out.shape == SMOOTH.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - SMOOTH.astype(int)).max() < 16
