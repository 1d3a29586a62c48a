#!/usr/bin/env python3
"""How far is the pose a frame shows from the pose the expert planned its label on?

For each expert tick of a `learn` demonstration bag: the measured end-effector pose (forward
kinematics of the newest joint states at the tick, which is what the frame shows) against the
expert's commanded target (the start pose plus every executed action before the tick, the pose
the open-loop expert plans on), and against the rate limiter's output at the tick (what is left
is the servos' tracking lag). Prints the median, 90th percentile and largest distance [mm] over
all ticks of all bags, and the median step the expert asked for.

    python scripts/expert_lag.py RUN/bags/demo_seed* [--robot wx250s]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from openvla_ros.control.actions import apply_delta
from openvla_ros.control.kinematics import get_kinematics
from openvla_ros.msgio.bags import openvla_typestore
from openvla_ros.msgio.poses import pose_to_matrix
from openvla_ros.msgio.topics import ACTION_CHUNK, EE_TARGET


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _latest(stamped: list[tuple[float, object]], t: float):
    times = np.array([s for s, _ in stamped])
    return stamped[int(np.searchsorted(times, t, side='right')) - 1][1]


def bag_lags(bag: Path, robot: str) -> np.ndarray:
    """(ticks, 3): [measured - commanded target, measured - limiter output, step] in metres."""
    from rosbags.highlevel import AnyReader

    kin = get_kinematics(robot)
    joints, chunks, outputs = [], [], []
    with AnyReader([bag], default_typestore=openvla_typestore()) as reader:
        for conn, _, raw in reader.messages():
            if not conn.topic.endswith('joint_states') and conn.topic not in (
                ACTION_CHUNK, EE_TARGET
            ):
                continue
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == ACTION_CHUNK:
                chunks.append((_stamp(msg), np.asarray(msg.actions).reshape(-1, 7)[0]))
            elif conn.topic == EE_TARGET:
                outputs.append((_stamp(msg), pose_to_matrix(msg.pose)))
            else:
                names = list(msg.name)
                q = [msg.position[names.index(n)] for n in kin.joint_names]
                joints.append((_stamp(msg), np.asarray(q)))
    for series in (joints, chunks, outputs):
        series.sort(key=lambda row: row[0])
    target = _latest(outputs, chunks[0][0]).copy()
    rows = []
    for t, action in chunks:
        measured = kin.fk(_latest(joints, t))[:3, 3]
        output = _latest(outputs, t)[:3, 3]
        rows.append([
            np.linalg.norm(measured - target[:3, 3]),
            np.linalg.norm(measured - output),
            np.linalg.norm(action[:3]),
        ])  # fmt: skip
        target = apply_delta(target, action)
    return np.asarray(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('bags', nargs='+', type=Path)
    parser.add_argument('--robot', default='wx250s')
    args = parser.parse_args()
    rows = np.concatenate([bag_lags(bag, args.robot) for bag in args.bags]) * 1000.0
    print(f'{len(args.bags)} bags, {len(rows)} expert ticks [mm]')
    for i, what in enumerate(('measured - commanded target', 'measured - limiter output')):
        col = rows[:, i]
        print(
            f'{what:28s} median {np.median(col):5.1f}  p90 {np.percentile(col, 90):5.1f}  '
            f'max {col.max():5.1f}'
        )
    print(f'{"step asked for":28s} median {np.median(rows[:, 2]):5.1f}')


if __name__ == '__main__':
    main()
