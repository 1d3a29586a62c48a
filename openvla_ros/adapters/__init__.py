"""Arm adapters (no rclpy): a safe end-effector target -> the values each robot driver interface
takes.

``ArmAdapter`` does IK (``openvla_ros.control.kinematics``), checks joint limits after IK and maps
the normalized gripper opening to the driver's units; ``openvla_ros.nodes.arm_adapter_node`` turns
the resulting values into messages and action goals.
"""

from __future__ import annotations

from openvla_ros.adapters.adapter import AdapterConfig, ArmAdapter
from openvla_ros.adapters.gripper import (
    changed_meaningfully,
    check_opening,
    finger_position,
    franka_gripper_command,
    FRANKA_MAX_WIDTH,
    franka_width,
    FrankaGripperConfig,
    gripper_action_command,
    gripper_command_position,
    INTERBOTIX_GRIPPER_PWM,
    interbotix_gripper_pwm,
    measured_opening,
    WX250S_FINGER_RANGE,
)
from openvla_ros.adapters.interfaces import (
    DEFAULT_INTERFACE,
    driver_interface,
    DriverInterface,
    FRANKA_GRIPPER_INTERFACES,
    INTERFACE_TABLE,
    INTERFACES,
    interfaces_for,
    SIM_INTERFACES,
)
from openvla_ros.adapters.joints import JointLimitConfig, JointSolution, JointTargetSolver
from openvla_ros.adapters.servo import servo_twist, zero_twist
from openvla_ros.adapters.values import (
    AdapterResult,
    ArmValues,
    EndEffectorCommand,
    FrankaGripperValues,
    GripperCommandValues,
    GripperValues,
    HOLD_LAST_COMMAND,
    HOLD_RESENT,
    JointGroupCommandValues,
    JointSingleCommandValues,
    JointTrajectoryValues,
    OK,
    PoseValues,
    REJECT_INVALID_POSE,
    REJECT_JOINT_LIMIT,
    REJECT_JOINT_VELOCITY,
    REJECT_NON_FINITE,
    TwistValues,
    WAIT_FOR_JOINT_STATES,
)

__all__ = [
    'DEFAULT_INTERFACE',
    'FRANKA_GRIPPER_INTERFACES',
    'FRANKA_MAX_WIDTH',
    'HOLD_LAST_COMMAND',
    'HOLD_RESENT',
    'INTERBOTIX_GRIPPER_PWM',
    'INTERFACE_TABLE',
    'INTERFACES',
    'OK',
    'REJECT_INVALID_POSE',
    'REJECT_JOINT_LIMIT',
    'REJECT_JOINT_VELOCITY',
    'REJECT_NON_FINITE',
    'SIM_INTERFACES',
    'WAIT_FOR_JOINT_STATES',
    'WX250S_FINGER_RANGE',
    'AdapterConfig',
    'AdapterResult',
    'ArmAdapter',
    'ArmValues',
    'DriverInterface',
    'EndEffectorCommand',
    'FrankaGripperConfig',
    'FrankaGripperValues',
    'GripperCommandValues',
    'GripperValues',
    'JointGroupCommandValues',
    'JointLimitConfig',
    'JointSingleCommandValues',
    'JointSolution',
    'JointTargetSolver',
    'JointTrajectoryValues',
    'PoseValues',
    'TwistValues',
    'changed_meaningfully',
    'check_opening',
    'driver_interface',
    'finger_position',
    'franka_gripper_command',
    'franka_width',
    'gripper_action_command',
    'gripper_command_position',
    'interbotix_gripper_pwm',
    'interfaces_for',
    'measured_opening',
    'servo_twist',
    'zero_twist',
]
