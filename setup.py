"""pip install of the Python package (CMakeLists.txt builds the interfaces and the ROS install)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'openvla_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    description='OpenVLA vision-language-action policies on ROS 2 robot arms',
    license='MIT',
    python_requires='>=3.10',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    package_data={PACKAGE: ['py.typed', 'model/assets/*', 'model/assets/llama2_tokenizer/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        (f'share/{PACKAGE}/rviz', glob('rviz/*.rviz')),
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
