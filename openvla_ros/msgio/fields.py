"""ROS message <-> numpy conversions for recording, and the typestore that knows our messages.

rosbags deserializes into plain dataclasses; these helpers only read fields, so they work on any
message with the same layout (from a bag, or a test that builds messages with the typestore).
``pose_to_matrix`` is the nodes' own (``openvla_ros.msgio.poses``): a zero or non-finite pose
raises ``InvalidPoseError`` (a ValueError), which the bag reader reports as a ``BagReadError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from openvla_ros.data.errors import BagReadError
from openvla_ros.msgio.images import compressed_to_rgb, ImageDecodeError, raw_to_rgb
from openvla_ros.msgio.poses import InvalidPoseError, pose_to_matrix

__all__ = [
    'OWN_MESSAGE_TYPES',
    'InvalidPoseError',
    'decode_image',
    'make_typestore',
    'msg_dir',
    'pose_to_matrix',
    'stamp_ns',
]

#: Our message types that recording reads; every `msg/*.msg` file is registered.
OWN_MESSAGE_TYPES = ('ActionChunk', 'EndEffectorTarget')


def msg_dir() -> Path:
    """The package's `msg/` directory (source tree or the installed share directory)."""
    here = Path(__file__).resolve().parents[2] / 'msg'
    if here.is_dir():
        return here
    from openvla_ros.bringup.profiles import share_dir

    return share_dir() / 'msg'


def make_typestore(store: str = 'ros2_kilted') -> Any:
    """A rosbags typestore with the standard ROS 2 types plus `openvla_ros/msg/*` registered.

    Why: rosbags ships only the standard messages; our EndEffectorTarget must be registered from
    its .msg text before bags holding it can be read or written. One typestore writes our bags
    (``openvla_ros.msgio.bags``) and reads them; the default is the distro of the rclpy wheels
    the development venv runs (Kilted). The standard messages recorded here (Image,
    CompressedImage, JointState, String, PoseStamped) have the same layout in Humble and Jazzy.

    Args:
        store: a `rosbags.typesys.Stores` value ('ros2_kilted', 'ros2_humble', 'ros2_jazzy', ...).

    Raises:
        BagReadError: a .msg file is missing or cannot be parsed.
    """
    from rosbags.typesys import get_types_from_msg, get_typestore, Stores

    typestore = get_typestore(Stores(store))
    types: dict[str, Any] = {}
    directory = msg_dir()
    names = sorted({p.stem for p in directory.glob('*.msg')} | set(OWN_MESSAGE_TYPES))
    for name in names:
        path = directory / f'{name}.msg'
        try:
            types.update(get_types_from_msg(path.read_text(), f'openvla_ros/msg/{name}'))
        except Exception as exc:  # noqa: BLE001 - OSError, or the parser's own types
            raise BagReadError(
                f'cannot register openvla_ros/msg/{name} from {path}: {exc}'
            ) from None
    typestore.register(types)
    return typestore


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header stamp in integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def decode_image(msg: Any, msgtype: str) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> (H, W, 3) uint8 RGB, with the policy node's
    decoder (``openvla_ros.msgio.images``), so that a dataset sees the pixels the node would.

    Args:
        msg: the deserialized message.
        msgtype: its type name.

    Raises:
        BagReadError: an unsupported encoding, a buffer that does not match the header, or bytes
            that do not decode.
    """
    try:
        if msgtype.endswith('CompressedImage'):
            return compressed_to_rgb(str(msg.format), bytes(msg.data))
        return raw_to_rgb(str(msg.encoding).lower(), int(msg.height), int(msg.width),
                          int(msg.step), bytes(msg.data))
    except ImageDecodeError as exc:
        raise BagReadError(str(exc)) from exc
