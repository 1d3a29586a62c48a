"""`colcon build` of this package against the venv's ROS wheels, as a ROS user would build it."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
COLCON = VENV / 'bin' / 'colcon'


@pytest.mark.slow
@pytest.mark.skipif(not COLCON.exists(), reason='colcon is not installed in this environment')
def test_colcon_build_installs_the_nodes_launch_files_and_messages(tmp_path):
    files = subprocess.run(
        ['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    if not files:
        pytest.skip('not a git checkout: the tracked files are unknown')
    src = tmp_path / 'src' / 'openvla_ros'
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    env = dict(
        os.environ,
        AMENT_PREFIX_PATH=str(VENV),
        CMAKE_PREFIX_PATH=str(VENV),
        PATH=f'{VENV / "bin"}:{os.environ["PATH"]}',
    )
    build = subprocess.run(
        [
            str(COLCON),
            'build',
            '--base-paths',
            'src',
            '--cmake-args',
            f'-DPython3_EXECUTABLE={sys.executable}',
            '-DBUILD_TESTING=OFF',
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix = tmp_path / 'install' / 'openvla_ros'
    for exe in (
        'policy_node',
        'action_limiter',
        'safety_monitor',
        'arm_adapter',
        'sim_node',
        'scripted_policy',
    ):
        assert os.access(prefix / 'lib' / 'openvla_ros' / exe, os.X_OK), exe
    share = prefix / 'share' / 'openvla_ros'
    for name in (
        'launch/widowx_bridge.launch.py',
        'config/widowx_bridge.yaml',
        'rviz/openvla.rviz',
        'msg/ActionChunk.msg',
        'package.xml',
    ):
        assert (share / name).is_file(), name
    site = next((prefix / 'lib').glob('python3*/site-packages'))
    check = subprocess.run(
        [
            sys.executable,
            '-c',
            'import openvla_ros, openvla_ros.msg, openvla_ros.bringup.graph; '
            'print(openvla_ros.__file__, openvla_ros.msg.ActionChunk.__name__)',
        ],
        cwd=tmp_path,
        env=dict(env, PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert str(site) in check.stdout and 'ActionChunk' in check.stdout
