"""Suite-wide settings: DDS stays on this machine, rendering is headless, no model hub is asked."""

from __future__ import annotations

import os

# Set before any test imports rclpy or mujoco. Each pytest process gets its own DDS domain, so that
# two test runs
# on one machine (or a test and a running demo) never see each other's topics.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import sys  # noqa: E402

# Shared test helpers (test/ros_helpers.py) are importable from every test directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tiny_model_dir(tmp_path_factory):
    """A tiny random OpenVLA checkpoint in the real HF layout, built once per test session."""
    from openvla_ros.model.tiny import make_tiny_model  # noqa: PLC0415

    return make_tiny_model(tmp_path_factory.mktemp('tiny_openvla') / 'model', seed=0)


@pytest.fixture
def ros_context():
    """A private rclpy Context for one test (real DDS), shut down afterwards."""
    import rclpy  # noqa: PLC0415

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)
