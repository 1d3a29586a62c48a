"""Arm adapters (no rclpy): a safe end-effector target -> the values each robot driver interface
takes.

``ArmAdapter`` does IK (``openvla_ros.control.kinematics``), checks joint limits after IK and maps
the normalized gripper opening to the driver's units; ``openvla_ros.nodes.arm_adapter_node`` turns
the resulting values into messages and action goals.
"""

# Lazy: `import openvla_ros.adapters.interfaces` (the node graph, so the launch files and the CLI)
# must not load the kinematics (scipy); a name below is imported from its module on first use
# (PEP 562), as in openvla_ros.model.
_EXPORTS: dict[str, str] = {
    'AdapterConfig': 'openvla_ros.adapters.adapter',
    'AdapterResult': 'openvla_ros.adapters.values',
    'ArmAdapter': 'openvla_ros.adapters.adapter',
    'ArmValues': 'openvla_ros.adapters.values',
    'changed_meaningfully': 'openvla_ros.adapters.gripper',
    'check_opening': 'openvla_ros.adapters.gripper',
    'DEFAULT_INTERFACE': 'openvla_ros.adapters.interfaces',
    'driver_interface': 'openvla_ros.adapters.interfaces',
    'DriverInterface': 'openvla_ros.adapters.interfaces',
    'EndEffectorCommand': 'openvla_ros.adapters.values',
    'finger_position': 'openvla_ros.adapters.gripper',
    'franka_gripper_command': 'openvla_ros.adapters.gripper',
    'FRANKA_GRIPPER_INTERFACES': 'openvla_ros.adapters.interfaces',
    'FRANKA_MAX_WIDTH': 'openvla_ros.adapters.gripper',
    'franka_width': 'openvla_ros.adapters.gripper',
    'FrankaGripperConfig': 'openvla_ros.adapters.gripper',
    'FrankaGripperValues': 'openvla_ros.adapters.values',
    'gripper_action_command': 'openvla_ros.adapters.gripper',
    'gripper_command_position': 'openvla_ros.adapters.gripper',
    'GripperCommandValues': 'openvla_ros.adapters.values',
    'GripperValues': 'openvla_ros.adapters.values',
    'HOLD_LAST_COMMAND': 'openvla_ros.adapters.values',
    'HOLD_RESENT': 'openvla_ros.adapters.values',
    'INTERBOTIX_GRIPPER_PWM': 'openvla_ros.adapters.gripper',
    'interbotix_gripper_pwm': 'openvla_ros.adapters.gripper',
    'INTERFACE_TABLE': 'openvla_ros.adapters.interfaces',
    'INTERFACES': 'openvla_ros.adapters.interfaces',
    'interfaces_for': 'openvla_ros.adapters.interfaces',
    'JointGroupCommandValues': 'openvla_ros.adapters.values',
    'JointLimitConfig': 'openvla_ros.adapters.joints',
    'JointSingleCommandValues': 'openvla_ros.adapters.values',
    'JointSolution': 'openvla_ros.adapters.joints',
    'JointTargetSolver': 'openvla_ros.adapters.joints',
    'JointTrajectoryValues': 'openvla_ros.adapters.values',
    'measured_opening': 'openvla_ros.adapters.gripper',
    'OK': 'openvla_ros.adapters.values',
    'PoseValues': 'openvla_ros.adapters.values',
    'REJECT_INVALID_POSE': 'openvla_ros.adapters.values',
    'REJECT_JOINT_LIMIT': 'openvla_ros.adapters.values',
    'REJECT_JOINT_VELOCITY': 'openvla_ros.adapters.values',
    'REJECT_NON_FINITE': 'openvla_ros.adapters.values',
    'servo_twist': 'openvla_ros.adapters.servo',
    'SIM_INTERFACES': 'openvla_ros.adapters.interfaces',
    'TwistValues': 'openvla_ros.adapters.values',
    'WAIT_FOR_JOINT_STATES': 'openvla_ros.adapters.values',
    'WX250S_FINGER_RANGE': 'openvla_ros.adapters.gripper',
    'zero_twist': 'openvla_ros.adapters.servo',
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
