"""A pip install registers openvla_ros for `ros2 launch` / `ros2 run` in its prefix (here the
development venv, installed editable by scripts/setup_venv.sh): the ament index marker, the
launch files, configs and rviz layout under share/openvla_ros, and node launchers under
lib/openvla_ros that start the nodes. Checked with ament_index_python, as the launch tools look."""

from __future__ import annotations

import ast
from functools import partial
import os
from pathlib import Path
import re
import subprocess
import sys

import pytest
from rclpy.node import Node
from ros_helpers import sigint_on_exit, start_node, wait_for_nodes

from openvla_ros.bringup.launch_checks import EXIT_CODES_AFTER_SIGINT
from openvla_ros.bringup.profiles import share_dir
from openvla_ros.nodes._common import spun_node

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)


def setup_nodes() -> dict[str, str]:
    """setup.py's NODES table (name -> module), read without running setup.py."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'NODES':
            return ast.literal_eval(node.value)
    raise AssertionError('setup.py has no NODES table')


def share_directory() -> Path:
    """get_package_share_directory('openvla_ros') in a fresh interpreter of this venv, with the
    venv as the ament prefix (README: export AMENT_PREFIX_PATH=$VIRTUAL_ENV)."""
    out = subprocess.run(
        [
            sys.executable,
            '-c',
            'from ament_index_python.packages import '
            'get_package_share_directory as g; print(g("openvla_ros"))',
        ],
        env=dict(os.environ, AMENT_PREFIX_PATH=str(VENV)),
        cwd='/',
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return Path(out.stdout.strip())


@pytest.fixture(scope='module')
def share():
    path = share_directory()
    if not (path / 'launch').is_dir():
        pytest.fail(
            f"{path} has no launch/: the venv install predates setup.py's data files; "
            're-run scripts/setup_venv.sh (or .venv/bin/pip install -e . --no-deps)'
        )
    return path


def test_the_share_directory_is_in_this_prefix(share):
    assert share == VENV / 'share' / 'openvla_ros'
    assert (
        VENV / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'openvla_ros'
    ).is_file()


@pytest.mark.parametrize(
    'folder,pattern', [('launch', '*.launch.py'), ('config', '*.yaml'), ('rviz', '*.rviz')]
)
def test_the_share_directory_holds_every_launch_file_config_and_rviz_layout(
    share, folder, pattern
):
    expected = sorted(p.name for p in (ROOT / folder).glob(pattern))
    assert expected
    assert sorted(p.name for p in (share / folder).glob(pattern)) == expected
    # (copies; in an editable install the launch reads the checkout's configs and rviz layout,
    # see openvla_ros.bringup.profiles.share_dir, so only a new file needs a re-install)
    assert (share / 'package.xml').is_file()


def test_every_node_has_a_launcher_and_pip_colcon_and_the_entry_points_agree():
    nodes = setup_nodes()
    cmake = dict(
        re.findall(r'"(\w+):(openvla_ros\.nodes\.\w+)"', (ROOT / 'CMakeLists.txt').read_text())
    )
    assert nodes == cmake
    setup_text = (ROOT / 'setup.py').read_text()
    for name, module in nodes.items():
        assert f"'{name} = {module}:main'" in setup_text, name
        assert os.access(VENV / 'lib' / 'openvla_ros' / name, os.X_OK), name


@pytest.fixture
def graph_probe():
    with spun_node(partial(Node, 'install_probe')) as node:
        yield node


@pytest.mark.slow
def test_an_installed_launcher_starts_its_node_outside_the_venv_and_exits_0_on_sigint(
    graph_probe, share
):
    # as launch_ros starts it: the file in lib/openvla_ros, executed directly; the venv not
    # activated (PATH without it), so the launcher must find the prefix's Python itself
    env = dict(os.environ, PATH='/usr/bin:/bin', AMENT_PREFIX_PATH=str(VENV))
    env.pop('VIRTUAL_ENV', None)
    env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None)
    process = start_node(
        VENV / 'lib' / 'openvla_ros' / 'safety_monitor',
        'safety_monitor',
        share_dir() / 'config' / 'widowx_bridge.yaml',  # the launch's
        'joint_states:=/wx250s/joint_states',
        env=env,
        cwd='/',
    )
    with sigint_on_exit(process, timeout=30) as outputs:
        wait_for_nodes(graph_probe, ['safety_monitor'], 60, [process], period=0.1)
    assert process.returncode in EXIT_CODES_AFTER_SIGINT, outputs[0][-3000:]
