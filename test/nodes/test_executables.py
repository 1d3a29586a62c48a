"""The installed node executables, as `ros2 run` / `ros2 launch` start them: separate processes,
the profile YAML parsed by rcl's own parameter-file parser, and a clean exit on SIGINT."""

from __future__ import annotations

from functools import partial
from pathlib import Path
import subprocess
import sys

import pytest
from ros_helpers import assert_running, Probe, sigint_on_exit, start_node, wait_for, wait_for_nodes

from openvla_ros.msg import EndEffectorTarget, SafetyStatus
from openvla_ros.nodes._common import spun_node

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.prefix) / 'bin'


def start(executable: str, name: str, profile: str = 'widowx_bridge') -> subprocess.Popen:
    return start_node(BIN / executable, name, ROOT / 'config' / f'{profile}.yaml',
                      'joint_states:=/wx250s/joint_states')


@pytest.fixture
def probe():
    with spun_node(partial(Probe, 'exe_probe')) as node:
        yield node


@pytest.mark.parametrize('profile', ['widowx_bridge', 'franka_tabletop', 'franka_droid'])
def test_the_safety_monitor_and_limiter_start_from_the_profile_yaml_and_exit_cleanly(probe,
                                                                                   profile):
    probe.listen(SafetyStatus, '/openvla/safety_status')
    probe.listen(EndEffectorTarget, '/openvla/ee_target')
    processes = [start('safety_monitor', 'safety_monitor', profile),
                 start('action_limiter', 'action_limiter', profile)]
    with sigint_on_exit(*processes, timeout=20) as outputs:
        wait_for(lambda: len(probe.messages('/openvla/safety_status')) >= 3, 30,
                 'SafetyStatus from the safety_monitor process')
        # both processes up before the SIGINT below (the limiter publishes nothing without a pose)
        wait_for_nodes(probe, ['action_limiter', 'safety_monitor'], 30)
        status = probe.messages('/openvla/safety_status')[-1]
        # no joint states yet: nothing to hold, nothing may move
        assert status.state == SafetyStatus.STATE_HOLD
        assert list(status.reasons) == ['HALT_FOR_NO_REFERENCE']
        assert probe.messages('/openvla/ee_target') == []  # the limiter waits for a pose too
        assert_running(*processes)
    for p, out in zip(processes, outputs):
        assert p.returncode == 0, out[-2000:]
