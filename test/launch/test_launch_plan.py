"""What each launch file starts (openvla_ros.bringup.launch_description.plan_launch), walked here
without the launch library: with sim:=true and no robot_state_publisher on the ament index, every
profile plans its graph with one warning and no error, and every executable a Node action names
resolves the way launch_ros resolves it (<prefix of the package>/lib/<package>/<executable>).
Where launch_ros is importable (a ROS machine) the real LaunchDescription is visited too."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
import sys

import pytest

from openvla_ros.bringup.launch_description import (
    LaunchPlanError,
    NO_ROBOT_STATE_PUBLISHER,
    NO_RVIZ,
    package_installed,
    plan_launch,
)
from openvla_ros.bringup.profiles import PROFILES

SIM = {'sim': 'true', 'policy': 'scripted', 'task': 'lift_block'}
HAS_LAUNCH_ROS = importlib.util.find_spec('launch_ros') is not None


@pytest.fixture
def venv_index(monkeypatch):
    """The development venv as the only ament prefix, as README's venv commands set it."""
    monkeypatch.setenv('AMENT_PREFIX_PATH', sys.prefix)
    if not package_installed('openvla_ros'):
        pytest.skip('openvla_ros is not installed in this prefix: run scripts/setup_venv.sh')
    for optional in ('robot_state_publisher', 'rviz2'):
        if package_installed(optional):
            pytest.skip(f'{optional} is installed here: this test is about a prefix without it')


def executable_path(package: str, executable: str) -> Path:
    from ament_index_python.packages import get_package_prefix  # noqa: PLC0415

    return Path(get_package_prefix(package)) / 'lib' / package / executable


@pytest.mark.parametrize('profile', PROFILES)
def test_sim_without_robot_state_publisher_plans_the_graph_with_one_warning(venv_index, profile):
    plan = plan_launch(profile, SIM)
    assert plan.warnings == (NO_ROBOT_STATE_PUBLISHER,)
    assert 'robot_state_publisher' in plan.warnings[0]
    assert 'no arm model in rviz' in plan.warnings[0]
    assert not plan.robot_state_publisher and not plan.rviz
    assert [n.executable for n in plan.nodes] == [
        'sim_node',
        'scripted_policy',
        'action_limiter',
        'safety_monitor',
        'arm_adapter',
    ]
    for node in plan.nodes:
        path = executable_path('openvla_ros', node.executable)
        assert os.access(path, os.X_OK), path
    assert plan.profile_yaml.is_file()


@pytest.mark.parametrize('profile', PROFILES)
def test_use_rviz_without_rviz2_refuses_with_one_line(venv_index, profile):
    with pytest.raises(LaunchPlanError) as info:
        plan_launch(profile, {**SIM, 'use_rviz': 'true'})
    assert str(info.value) == NO_RVIZ and '\n' not in NO_RVIZ
    assert 'rviz2 is not installed' in NO_RVIZ


def test_with_the_optional_packages_installed_they_start_without_warnings():
    plan = plan_launch('widowx_bridge', {**SIM, 'use_rviz': 'True'}, installed=lambda _: True)
    assert plan.robot_state_publisher and plan.rviz and plan.warnings == ()
    assert plan.robot_name == 'wx250s' and plan.base_frame == 'wx250s/base_link'


def test_hardware_launches_need_no_robot_state_publisher_and_warn_of_nothing():
    # the drivers publish their own description; only the simulator needs ours
    plan = plan_launch('franka_tabletop', {}, installed=lambda _: False)
    assert plan.warnings == () and not plan.robot_state_publisher
    assert 'sim_node' not in [n.executable for n in plan.nodes]


def test_the_plan_reports_bad_arguments_like_the_graph():
    with pytest.raises(ValueError, match='needs sim:=true'):
        plan_launch('widowx_bridge', {'policy': 'scripted'}, installed=lambda _: True)
    with pytest.raises(ValueError, match='unknown launch arguments'):
        plan_launch('widowx_bridge', {'simulate': 'true'}, installed=lambda _: True)


def test_the_launch_files_share_one_plan():
    for profile in PROFILES:
        text = (
            Path(__file__).resolve().parents[2] / 'launch' / f'{profile}.launch.py'
        ).read_text()
        assert f"generate_profile_launch_description('{profile}')" in text


@pytest.mark.skipif(not HAS_LAUNCH_ROS, reason='launch_ros is not installed (not on PyPI)')
@pytest.mark.parametrize('profile', PROFILES)
def test_the_launch_description_builds_its_actions_without_raising(venv_index, profile):
    from launch.actions import OpaqueFunction  # noqa: PLC0415
    from launch_ros.actions import Node  # noqa: PLC0415

    from launch import LaunchContext  # noqa: PLC0415
    from openvla_ros.bringup.launch_description import (  # noqa: PLC0415
        generate_profile_launch_description,
    )

    context = LaunchContext()
    for name, value in SIM.items():
        context.launch_configurations[name] = value
    description = generate_profile_launch_description(profile)
    actions = []
    for entity in description.entities:
        if isinstance(entity, OpaqueFunction):
            actions += entity.execute(context) or []
        else:
            entity.visit(context)
    nodes = [a for a in actions if isinstance(a, Node)]
    assert len(nodes) == 5  # the graph, without robot_state_publisher
