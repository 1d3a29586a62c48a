"""Control core: kinematics, action semantics, the action-chunk rate limiter and the safety
monitor.

Pure Python + numpy/scipy (+ ruckig for jerk-limited trajectories); never imports rclpy. The ROS
nodes convert messages to these types, call the core, and publish the results.
"""

from openvla_ros.control.actions import (
    ACTION_SPACES,
    ActionSpace,
    apply_delta,
    BRIDGE_ACTION_HIGH,
    BRIDGE_ACTION_LOW,
    delta_between,
    get_action_space,
    gripper_from_opening,
    gripper_to_opening,
    GripperConvention,
)
from openvla_ros.control.config import LimiterConfig, SafetyConfig, WorkspaceBox
from openvla_ros.control.errors import ConfigError, ControlError, NotReadyError, UnknownNameError
from openvla_ros.control.kinematics import ArmKinematics, get_kinematics, IKResult
from openvla_ros.control.rate_limiter import (
    ActionChunkData,
    ActionRateLimiter,
    LimiterOutput,
    SubmitResult,
)
from openvla_ros.control.safety import (
    SafetyDecision,
    SafetyMonitor,
    SafetyState,
    SafetyStatusData,
)

__all__ = [
    'ACTION_SPACES',
    'BRIDGE_ACTION_HIGH',
    'BRIDGE_ACTION_LOW',
    'ActionChunkData',
    'ActionRateLimiter',
    'ActionSpace',
    'ArmKinematics',
    'ConfigError',
    'ControlError',
    'GripperConvention',
    'IKResult',
    'LimiterConfig',
    'LimiterOutput',
    'NotReadyError',
    'SafetyConfig',
    'SafetyDecision',
    'SafetyMonitor',
    'SafetyState',
    'SafetyStatusData',
    'SubmitResult',
    'UnknownNameError',
    'WorkspaceBox',
    'apply_delta',
    'delta_between',
    'get_action_space',
    'get_kinematics',
    'gripper_from_opening',
    'gripper_to_opening',
]
