"""Config validation: unknown keys, bad values, the Bridge profile values."""

from __future__ import annotations

import math

import pytest

from openvla_ros.control.config import LimiterConfig, SafetyConfig, WorkspaceBox
from openvla_ros.control.errors import ConfigError

BRIDGE_LOW = (0.1, -0.20, -0.01)
BRIDGE_HIGH = (0.45, 0.25, 0.30)


def test_limiter_from_dict_accepts_every_field_name():
    config = LimiterConfig.from_dict({'control_rate': 20, 'merge_policy': 'weighted_average',
                                      'max_linear_jerk': math.inf})
    assert config.period == pytest.approx(0.05)
    assert config.max_linear_jerk == math.inf


def test_limiter_from_dict_names_an_unknown_key():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'max_speed'; known keys: "):
        LimiterConfig.from_dict({'max_speed': 1.0})


def test_limiter_rejects_a_negative_velocity_naming_field_and_value():
    message = r'LimiterConfig.max_linear_velocity = -1.0: must be > 0'
    with pytest.raises(ConfigError, match=message):
        LimiterConfig(max_linear_velocity=-1.0)


def test_limiter_rejects_nan_and_bool_numbers():
    with pytest.raises(ConfigError, match='max_angular_velocity = nan'):
        LimiterConfig(max_angular_velocity=math.nan)
    with pytest.raises(ConfigError, match='control_rate = True: expected a number'):
        LimiterConfig(control_rate=True)


def test_limiter_rejects_an_unknown_merge_policy():
    with pytest.raises(ConfigError, match="merge_policy = 'newest'.*latest_only"):
        LimiterConfig(merge_policy='newest')


def test_limiter_rejects_merge_weights_that_do_not_sum_to_one():
    with pytest.raises(ConfigError, match='merge_weight_old \\+ merge_weight_new = 1.2'):
        LimiterConfig(merge_weight_old=0.5, merge_weight_new=0.7)


def test_safety_from_dict_builds_the_bridge_workspace():
    config = SafetyConfig.from_dict({
        'workspace_low': list(BRIDGE_LOW),
        'workspace_high': list(BRIDGE_HIGH),
        'orientation_low': [-math.pi, -math.pi, -1.57],
        'orientation_high': [math.pi, math.pi, 1.57],
    })
    assert config.workspace == WorkspaceBox(BRIDGE_LOW, BRIDGE_HIGH)
    assert config.workspace.contains([0.3, -0.09, 0.26])
    assert not config.workspace.contains([0.5, 0.0, 0.1])


def test_safety_from_dict_requires_the_workspace():
    with pytest.raises(ConfigError, match='missing required key\\(s\\) workspace_low'):
        SafetyConfig.from_dict({'workspace_high': [1, 1, 1]})


def test_safety_rejects_an_inverted_box_naming_the_axis():
    with pytest.raises(ConfigError, match=r'low\[y\] = 0.3 must be < high\[y\] = 0.25'):
        SafetyConfig(workspace_low=(0.1, 0.3, 0.0), workspace_high=(0.45, 0.25, 0.3))


def test_safety_rejects_a_box_with_two_numbers():
    with pytest.raises(ConfigError, match='expected 3 numbers, got 2'):
        SafetyConfig(workspace_low=(0.1, 0.3), workspace_high=(0.45, 0.25, 0.3))


def test_safety_rejects_an_unknown_mode_and_the_derived_workspace_key():
    with pytest.raises(ConfigError, match="mode = 'ignore'"):
        SafetyConfig(workspace_low=BRIDGE_LOW, workspace_high=BRIDGE_HIGH, mode='ignore')
    with pytest.raises(ConfigError, match="unknown key\\(s\\) 'workspace'"):
        SafetyConfig.from_dict({'workspace_low': BRIDGE_LOW, 'workspace_high': BRIDGE_HIGH,
                                'workspace': {}})


def test_safety_rejects_orientation_bounds_beyond_pi():
    with pytest.raises(ConfigError, match=r'orientation_high\[yaw\] = 4.0: must be <= pi'):
        SafetyConfig(workspace_low=BRIDGE_LOW, workspace_high=BRIDGE_HIGH,
                     orientation_high=(1.0, 1.0, 4.0))


def test_safety_allows_infinite_timeouts_to_disable_a_watchdog():
    config = SafetyConfig(workspace_low=BRIDGE_LOW, workspace_high=BRIDGE_HIGH,
                          image_timeout=math.inf)
    assert config.image_timeout == math.inf
