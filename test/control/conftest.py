"""Shared fixtures and the hypothesis profile of the control-core tests."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
import numpy as np
import pytest

from openvla_ros.control.config import SafetyConfig

settings.register_profile(
    'control',
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile('control')

# OpenVLA's WidowX / Bridge evaluation values (shared/reference/ROBOTS.md).
BRIDGE_LOW = (0.1, -0.20, -0.01)
BRIDGE_HIGH = (0.45, 0.25, 0.30)


@pytest.fixture
def bridge_safety_config() -> SafetyConfig:
    return SafetyConfig(
        workspace_low=BRIDGE_LOW,
        workspace_high=BRIDGE_HIGH,
        orientation_low=(-np.pi, -np.pi, -1.57),
        orientation_high=(np.pi, np.pi, 1.57),
    )


@pytest.fixture
def bridge_start_pose() -> np.ndarray:
    from scipy.spatial.transform import Rotation

    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_quat([0.0, -0.259, 0.0, -0.966]).as_matrix()
    pose[:3, 3] = [0.3, -0.09, 0.26]
    return pose
