"""pip install of the Python package (CMakeLists.txt builds the interfaces and the ROS install).

A pip install (editable or not) also registers the package for ``ros2 launch`` / ``ros2 run`` in
the install prefix (the venv), as colcon's install space would: the ament index marker,
``share/openvla_ros/{package.xml,launch,config,rviz}`` and one launcher per node in
``lib/openvla_ros`` (``setup.cfg``'s ``install_scripts`` does not apply to pip: its scripts go to
``bin/``).
"""

from glob import glob
import os

from setuptools import find_packages, setup
from setuptools.dist import Distribution

PACKAGE = 'openvla_ros'
ROOT = os.path.dirname(os.path.abspath(__file__))

# Node executables: `ros2 run openvla_ros <name>` and the launch files' Node actions.
# (CMakeLists.txt installs the same set for colcon; a test keeps the two in step.)
NODES = {
    'policy_node': 'openvla_ros.nodes.policy_node',
    'action_limiter': 'openvla_ros.nodes.action_limiter_node',
    'safety_monitor': 'openvla_ros.nodes.safety_monitor_node',
    'arm_adapter': 'openvla_ros.nodes.arm_adapter_node',
    'sim_node': 'openvla_ros.nodes.sim_node',
    'scripted_policy': 'openvla_ros.nodes.scripted_policy_node',
}

# A launcher in <prefix>/lib/openvla_ros runs the Python of its own prefix (<prefix>/bin/python3,
# i.e. the venv's, whether or not the venv is active), else python3 on PATH. pip copies data
# files verbatim (it rewrites the shebangs of scripts only), so the file is a shell/Python
# polyglot: sh runs the first line and execs Python, for which that line is a string literal.
_LAUNCHER = """#!/bin/sh
''''true; py="$(dirname "$0")/../../bin/python3"; [ -x "$py" ] || py=python3; exec "$py" "$0" "$@" #'''
# {name}: the openvla_ros node launcher that `ros2 run` / `ros2 launch` start (written by setup.py).
import sys

from {module} import main

sys.exit(main())
"""  # noqa: E501


def node_launchers() -> list[str]:
    """Writes build/ros_lib/<node> (executable) and returns their paths relative to setup.py."""
    out_dir = os.path.join('build', 'ros_lib')
    os.makedirs(os.path.join(ROOT, out_dir), exist_ok=True)
    paths = []
    for name, module in NODES.items():
        path = os.path.join(out_dir, name)
        with open(os.path.join(ROOT, path), 'w') as f:
            f.write(_LAUNCHER.format(name=name, module=module))
        os.chmod(os.path.join(ROOT, path), 0o755)
        paths.append(path)
    return paths


class _Distribution(Distribution):
    """setuptools' editable_wheel installs data files only where ``dist.has_data()`` is true, but
    Distribution names that method ``has_data_files``: without this alias ``pip install -e``
    silently drops every data file (seen with setuptools 84.2)."""

    def has_data(self) -> bool:
        return self.has_data_files()


setup(
    distclass=_Distribution,
    name=PACKAGE,
    version='0.1.0',
    description='OpenVLA vision-language-action policies on ROS 2 robot arms',
    license='MIT',
    python_requires='>=3.10',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    package_data={PACKAGE: ['py.typed', 'model/assets/*', 'model/assets/llama2_tokenizer/*',
                            'model/assets/learned/*/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', sorted(glob('launch/*.launch.py'))),
        (f'share/{PACKAGE}/config', sorted(glob('config/*.yaml'))),
        (f'share/{PACKAGE}/rviz', sorted(glob('rviz/*.rviz'))),
        (f'lib/{PACKAGE}', node_launchers()),
    ],
    install_requires=['numpy', 'scipy', 'pyyaml'],
    entry_points={
        'console_scripts': [
            'openvla-ros = openvla_ros.cli.main:main',
            'policy_node = openvla_ros.nodes.policy_node:main',
            'action_limiter = openvla_ros.nodes.action_limiter_node:main',
            'safety_monitor = openvla_ros.nodes.safety_monitor_node:main',
            'arm_adapter = openvla_ros.nodes.arm_adapter_node:main',
            'sim_node = openvla_ros.nodes.sim_node:main',
            'scripted_policy = openvla_ros.nodes.scripted_policy_node:main',
        ],
    },
)
