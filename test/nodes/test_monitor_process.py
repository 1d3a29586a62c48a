"""The safety monitor as a separate process (as `ros2 launch` starts it), fed by a probe that plays
camera, joint states and the limiter: a multi-process regression of issue 19's launched graph.

A lagging or blocked arm gets a tracking-error hold: the monitor re-anchors on the measured pose.
Its IK seed (the joint-velocity check's reference) must follow that hold pose. Seeded with the
joints of the last target that passed (where the arm never got), every later target near the
measured pose needed a joint "jump" from there, and the monitor held with
HALT_FOR_JOINT_VELOCITY_LIMIT for ever: the launched widowx lift_block never lifted.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
import subprocess
import sys
import threading

import numpy as np
import pytest
from ros_helpers import assert_running, Probe, sigint_on_exit, start_node, wait_for
from sensor_msgs.msg import JointState

from openvla_ros.bringup.profiles import load_profile
from openvla_ros.control import get_kinematics
from openvla_ros.control.config import BOUNDS_KEYS, SafetyConfig
from openvla_ros.msg import EndEffectorTarget, SafetyStatus
from openvla_ros.nodes._common import spun_node
from openvla_ros.nodes._conversions import matrix_to_pose

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.prefix) / 'bin'
PROFILE = 'widowx_bridge'
Q0 = np.array([0.0, -0.3, 0.4, 0.0, 1.2, 0.0])  # wx250s, inside the profile's safe set


def start_monitor() -> subprocess.Popen:
    return start_node(
        BIN / 'safety_monitor',
        'safety_monitor',
        ROOT / 'config' / f'{PROFILE}.yaml',
        'joint_states:=/wx250s/joint_states',
        'image:=/camera/image_raw',
    )


@pytest.fixture
def probe():
    with spun_node(partial(Probe, 'monitor_process_probe')) as node:
        yield node


class Feeder:
    """Camera, joint states (the arm stays at Q0: blocked) and targets at 20 Hz, like the sim and
    the limiter."""

    def __init__(self, probe: Probe, kin, target: np.ndarray) -> None:
        self.probe, self.kin, self.target = probe, kin, target
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rgb = np.zeros((8, 8, 3), np.uint8)
        while not self._stop.wait(0.05):
            self.probe.image(rgb)
            js = JointState(name=list(self.kin.joint_names), position=[float(v) for v in Q0])
            js.header.stamp = self.probe.get_clock().now().to_msg()
            self.probe.publish(JointState, '/wx250s/joint_states', js)
            msg = EndEffectorTarget(pose=matrix_to_pose(self.target), gripper=1.0)
            msg.header.stamp = self.probe.get_clock().now().to_msg()
            msg.header.frame_id = 'wx250s/base_link'
            self.probe.publish(EndEffectorTarget, '/openvla/ee_target', msg)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def test_after_a_tracking_error_hold_targets_at_the_measured_pose_pass_again(probe):
    kin = get_kinematics('wx250s')
    p0 = kin.fk(Q0)
    prof = load_profile(PROFILE)
    bounds = SafetyConfig.from_dict(
        {**{k: prof.common[k] for k in BOUNDS_KEYS}, 'control_rate': 20.0}
    ).bounds
    assert bounds.contains(p0)
    away = p0.copy()
    away[1, 3] += 0.15  # sideways: the waist turns; the blocked arm stays at p0
    assert bounds.contains(away)
    probe.listen(SafetyStatus, '/openvla/safety_status')
    process = start_monitor()
    with sigint_on_exit(process, timeout=20) as outputs:
        with Feeder(probe, kin, away) as feeder:
            wait_for(
                lambda: any(
                    'HALT_FOR_TRACKING_ERROR' in s.reasons
                    for s in probe.messages('/openvla/safety_status')
                ),
                60,
                'a tracking-error hold (the command ran 0.08 m ahead of the blocked arm)',
            )
            # the limiter re-anchors on the monitor's hold pose (the measured pose) and stays
            feeder.target = p0
            probe.clear('/openvla/safety_status')
            wait_for(
                lambda: any(
                    s.state in (SafetyStatus.STATE_OK, SafetyStatus.STATE_LIMITED)
                    for s in probe.messages('/openvla/safety_status')
                ),
                30,
                'targets at the measured pose passing again after the tracking hold (not '
                'HALT_FOR_JOINT_VELOCITY_LIMIT from a stale IK seed)',
            )
        assert_running(process)
    assert process.returncode == 0, outputs[0][-2000:]
