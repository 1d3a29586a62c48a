"""Camera frames to RGB arrays, without cv_bridge.

ROS ``sensor_msgs/Image`` data is converted exactly (no colour-space maths beyond channel order),
so the policy sees the same pixels whether or not cv_bridge is installed. ``CompressedImage``
(JPEG/PNG) is decoded with OpenCV.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    'SUPPORTED_ENCODINGS',
    'ImageDecodeError',
    'compressed_to_rgb',
    'jpeg_roundtrip',
    'raw_to_rgb',
]

# encoding -> (channels, index order that turns the stored channels into RGB)
_LAYOUTS: dict[str, tuple[int, tuple[int, ...]]] = {
    'rgb8': (3, (0, 1, 2)),
    'bgr8': (3, (2, 1, 0)),
    'rgba8': (4, (0, 1, 2)),
    'bgra8': (4, (2, 1, 0)),
    'mono8': (1, (0, 0, 0)),
}
SUPPORTED_ENCODINGS = tuple(sorted(_LAYOUTS))


class ImageDecodeError(ValueError):
    """A camera frame that cannot be turned into an RGB image; the message says why."""


def raw_to_rgb(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """Converts the fields of a ``sensor_msgs/Image`` into an (H, W, 3) uint8 RGB array (a copy).

    Args:
        encoding: one of ``SUPPORTED_ENCODINGS``.
        height: rows.
        width: columns.
        step: bytes per row (may include padding).
        data: the pixel bytes, ``height * step`` of them (any buffer: bytes, array.array, ...).

    Raises:
        ImageDecodeError: for an unsupported encoding, zero size, or data that does not match the
        header.
    """
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageDecodeError(
            f'unsupported image encoding {encoding!r}; supported: {", ".join(SUPPORTED_ENCODINGS)}'
        )
    channels, order = layout
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'empty image: {width}x{height}')
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageDecodeError(
            f'step {step} is smaller than width*channels = {row_bytes} for {encoding}'
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size != height * step:
        raise ImageDecodeError(
            f'image data has {buffer.size} bytes, expected height*step = '
            f'{height}*{step} = {height * step}'
        )
    pixels = buffer.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if order == (0, 1, 2) and channels == 3:
        return pixels.copy()  # rgb8: one copy, no per-channel gather (a frame is ~1 MB)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def compressed_to_rgb(fmt: str, data: bytes | bytearray | memoryview) -> np.ndarray:
    """Decodes a ``sensor_msgs/CompressedImage`` (JPEG or PNG) into an (H, W, 3) uint8 RGB array.

    Raises:
        ImageDecodeError: when the bytes are not a decodable image.
    """
    import cv2  # noqa: PLC0415 - OpenCV is only needed for compressed input

    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError(f'empty compressed image (format {fmt!r})')
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError(
            f'could not decode compressed image of format {fmt!r} ({buffer.size} bytes)'
        )
    return np.ascontiguousarray(bgr[:, :, ::-1])


def jpeg_roundtrip(rgb: np.ndarray, quality: int = 95) -> np.ndarray:
    """JPEG-encodes and decodes a frame, as the BridgeData evaluation does first."""
    import cv2  # noqa: PLC0415

    ok, encoded = cv2.imencode(
        '.jpg', np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise ImageDecodeError('JPEG encoding failed')
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1])
