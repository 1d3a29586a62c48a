"""One interface table (``openvla_ros.adapters.interfaces``): the adapter, the adapter node's
parameter, the node graph and its launch argument, and the simulator all accept exactly what it
says, for every arm and every interface."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from openvla_ros.adapters import AdapterConfig
from openvla_ros.adapters.interfaces import (
    DEFAULT_INTERFACE,
    driver_interface,
    INTERFACE_TABLE,
    INTERFACES,
    interfaces_for,
    SIM_INTERFACES,
)
from openvla_ros.bringup.graph import build_graph, GraphArgs, LAUNCH_ARGUMENTS
from openvla_ros.bringup.profiles import load_profile
from openvla_ros.control.kinematics import KNOWN_ARMS
from openvla_ros.nodes import arm_adapter_node, sim_node

# one profile per arm family the table names
PROFILE_OF = {'wx250s': 'widowx_bridge', 'fr3': 'franka_tabletop'}
PAIRS = [(robot, name) for robot in KNOWN_ARMS for name in INTERFACES]


def test_the_table_names_each_interface_once_and_only_known_arms():
    assert len(set(INTERFACES)) == len(INTERFACES) == len(INTERFACE_TABLE)
    assert {r for row in INTERFACE_TABLE for r in row.robots} <= set(KNOWN_ARMS)
    assert set(DEFAULT_INTERFACE) == set(KNOWN_ARMS)
    for robot, name in DEFAULT_INTERFACE.items():
        assert name in interfaces_for(robot) and name in SIM_INTERFACES
    with pytest.raises(ValueError, match='unknown interface'):
        driver_interface('moveit')


@pytest.mark.parametrize(('robot', 'interface'), PAIRS)
def test_the_adapter_accepts_exactly_the_arms_of_the_table(robot, interface):
    if robot in driver_interface(interface).robots:
        assert AdapterConfig(interface, robot).interface == interface
    else:
        hardware = re.escape(driver_interface(interface).hardware)
        with pytest.raises(ValueError, match=f'drives {hardware}, not {robot!r}'):
            AdapterConfig(interface, robot)


@pytest.mark.parametrize(('robot', 'interface'), [p for p in PAIRS if p[0] in PROFILE_OF])
@pytest.mark.parametrize('sim', [False, True])
def test_the_graph_accepts_exactly_the_table(robot, interface, sim):
    profile = load_profile(PROFILE_OF[robot])
    assert profile.get('robot') == robot
    args = GraphArgs(profile=PROFILE_OF[robot], interface=interface, sim=sim)
    fits = interface in interfaces_for(robot) and (interface in SIM_INTERFACES or not sim)
    if fits:
        specs = {s.name: s for s in build_graph(args, profile)}
        assert specs['arm_adapter'].parameters['interface'] == interface
        if sim:
            assert specs['sim'].parameters['interface'] == interface
    else:
        with pytest.raises(ValueError, match='does not fit robot|does not serve'):
            build_graph(args, profile)


def test_the_launch_argument_and_the_node_parameters_offer_the_table():
    (launch,) = [a for a in LAUNCH_ARGUMENTS if a.name == 'interface']
    assert launch.choices == ('', *INTERFACES)
    (param,) = [p for p in arm_adapter_node.PARAMS if p.name == 'interface']
    assert tuple(param.choices) == INTERFACES
    (sim,) = [p for p in sim_node.PARAMS if p.name == 'interface']
    assert all(name in sim.description for name in SIM_INTERFACES)
    assert not any(name in sim.description for name in set(INTERFACES) - set(SIM_INTERFACES))
    with pytest.raises(ValueError, match='is not one of'):
        GraphArgs(interface='moveit')


def test_the_graph_reads_the_table_without_loading_the_kinematics():
    # the launch files load the graph: the table is plain data (adapters/__init__ is lazy)
    code = (
        'import sys\n'
        'import openvla_ros.bringup.graph\n'
        'print(sorted(m for m in ("scipy", "openvla_ros.control", "openvla_ros.adapters.adapter")'
        ' if m in sys.modules))\n'
    )
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == '[]'
