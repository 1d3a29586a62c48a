"""Synthetic rosbag2 bags for the recording and fine-tuning tests, written with rosbags.

The end-effector target follows a known path, holds still from 1.0 s to 1.6 s (three all-zero
steps at 5 Hz), and the gripper closes after 1.0 s. `expected_actions` computes the steps by hand
(numpy + scipy, not the control core) for comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

NS = 1_000_000_000
DURATION_S = 3.0
POSE_RATE = 20.0
IMAGE_RATE = 10.0
HOLD = (1.0, 1.6)
INSTRUCTION = 'Pick up the red block'


def motion_time(t: float) -> float:
    """Time along the path: frozen during the hold."""
    if t < HOLD[0]:
        return t
    if t <= HOLD[1]:
        return HOLD[0]
    return t - (HOLD[1] - HOLD[0])


def pose_at(t: float) -> np.ndarray:
    """(4, 4) end-effector target at time t [s]."""
    s = motion_time(t)
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler('xyz', [0.1 * s, -0.05 * s, 0.2 * s]).as_matrix()
    pose[:3, 3] = [0.3 + 0.02 * s, -0.01 * s, 0.1 + 0.005 * np.sin(s)]
    return pose


def opening_at(t: float) -> float:
    """Gripper opening: open, then closed after 1.0 s."""
    return 1.0 if t < 1.0 - 1e-9 else 0.0


def expected_actions(rate: float = 5.0) -> tuple[np.ndarray, int]:
    """Hand-computed (steps, 7) actions at `rate` after dropping zero steps, and the drop count."""
    times = np.arange(0.0, DURATION_S + 1e-9, 1.0 / rate)
    actions, dropped = [], 0
    for t0, t1 in zip(times[:-1], times[1:]):
        a, b = pose_at(t0), pose_at(t1)
        dp = b[:3, 3] - a[:3, 3]
        drpy = Rotation.from_matrix(b[:3, :3] @ a[:3, :3].T).as_euler('xyz')
        if np.all(np.abs(np.concatenate([dp, drpy])) <= 1e-6):
            dropped += 1
            continue
        actions.append(np.concatenate([dp, drpy, [opening_at(t1)]]))
    return np.array(actions), dropped


def _stamp(types: dict[str, Any], ns: int) -> Any:
    return types['builtin_interfaces/msg/Time'](sec=ns // NS, nanosec=ns % NS)


def _header(types: dict[str, Any], ns: int) -> Any:
    return types['std_msgs/msg/Header'](stamp=_stamp(types, ns), frame_id='wx250s/base_link')


def image_at(index: int, height: int = 24, width: int = 32) -> np.ndarray:
    """A deterministic RGB frame whose content changes with `index`."""
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.stack(
        [(xx * 8 + index * 10) % 256, (yy * 10) % 256, np.full_like(xx, (index * 37) % 256)],
        axis=-1,
    )
    return frame.astype(np.uint8)


def write_synthetic_bag(
    path: str | Path,
    *,
    storage: str = 'mcap',
    images: bool = True,
    image_messages: bool = True,
    instruction: str | None = INSTRUCTION,
    encoding: str = 'rgb8',
    target_topic: str = '/openvla/safe_ee_target',
    joint_states: bool = False,
    labels: list[tuple[int, np.ndarray]] | None = None,
) -> Path:
    """Write one episode as a rosbag2 bag.

    Args:
        path: bag directory to create (must not exist).
        storage: 'mcap' or 'sqlite3'.
        images: add the camera topic.
        image_messages: write messages on the camera topic (False: the topic is empty).
        instruction: the instruction message (None: no instruction topic).
        encoding: image encoding, 'rgb8' or 'bgr8'.
        target_topic: topic of the commanded EndEffectorTarget.
        joint_states: also write /joint_states (zeros) for a measured-source test.
        labels: (time ns, 7-vector) expert labels written as ActionChunks on
            /openvla/expert_action (gripper 1 = open).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from openvla_ros.msgio.fields import make_typestore

    typestore = make_typestore()
    types = typestore.types
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    ee_type = 'openvla_ros/msg/EndEffectorTarget'
    with Writer(Path(path), version=9, storage_plugin=plugin) as writer:
        conns: dict[str, Any] = {}
        if images:
            conns['image'] = writer.add_connection(
                '/camera/image_raw', 'sensor_msgs/msg/Image', typestore=typestore
            )
        if instruction is not None:
            conns['text'] = writer.add_connection(
                '/instruction', 'std_msgs/msg/String', typestore=typestore
            )
        conns['ee'] = writer.add_connection(target_topic, ee_type, typestore=typestore)
        if joint_states:
            conns['joints'] = writer.add_connection(
                '/joint_states', 'sensor_msgs/msg/JointState', typestore=typestore
            )
        events: list[tuple[int, str, Any, str]] = []
        if labels is not None:
            chunk_type = 'openvla_ros/msg/ActionChunk'
            conns['label'] = writer.add_connection(
                '/openvla/expert_action', chunk_type, typestore=typestore
            )
            for ns, action in labels:
                msg = types[chunk_type](
                    header=_header(types, ns),
                    instruction=instruction or '',
                    model='scripted_expert',
                    unnorm_key='',
                    action_space='bridge_orig',
                    dt=0.2,
                    action_dim=7,
                    num_actions=1,
                    actions=np.asarray(action, dtype=np.float64),
                    gripper_convention=0,
                    tokens=np.zeros(0, dtype=np.int32),
                    inference_latency=0.0,
                )
                events.append((ns, 'label', msg, chunk_type))
        if instruction is not None:
            msg = types['std_msgs/msg/String'](data=instruction)
            events.append((0, 'text', msg, 'std_msgs/msg/String'))
        if images and image_messages:
            for i in range(int(round(DURATION_S * IMAGE_RATE)) + 1):
                ns = int(round(i * NS / IMAGE_RATE))
                frame = image_at(i)
                if encoding == 'bgr8':
                    frame = frame[:, :, ::-1]
                msg = types['sensor_msgs/msg/Image'](
                    header=_header(types, ns),
                    height=frame.shape[0],
                    width=frame.shape[1],
                    encoding=encoding,
                    is_bigendian=0,
                    step=frame.shape[1] * 3,
                    data=np.ascontiguousarray(frame).reshape(-1),
                )
                events.append((ns, 'image', msg, 'sensor_msgs/msg/Image'))
        for i in range(int(round(DURATION_S * POSE_RATE)) + 1):
            ns = int(round(i * NS / POSE_RATE))
            t = ns / NS
            pose = pose_at(t)
            q = Rotation.from_matrix(pose[:3, :3]).as_quat()
            pose_msg = types['geometry_msgs/msg/Pose'](
                position=types['geometry_msgs/msg/Point'](
                    x=pose[0, 3], y=pose[1, 3], z=pose[2, 3]
                ),
                orientation=types['geometry_msgs/msg/Quaternion'](x=q[0], y=q[1], z=q[2], w=q[3]),
            )
            msg = types[ee_type](
                header=_header(types, ns), pose=pose_msg, gripper=opening_at(t), hold=False
            )
            events.append((ns, 'ee', msg, ee_type))
            if joint_states:
                joints = types['sensor_msgs/msg/JointState'](
                    header=_header(types, ns),
                    name=[],
                    position=np.zeros(6),
                    velocity=np.zeros(0),
                    effort=np.zeros(0),
                )
                events.append((ns, 'joints', joints, 'sensor_msgs/msg/JointState'))
        events.sort(key=lambda e: e[0])
        for ns, key, msg, msgtype in events:
            writer.write(conns[key], ns, typestore.serialize_cdr(msg, msgtype))
    return Path(path)
