"""The package's topic names, defined once (every one remappable at launch).

The nodes publish and subscribe these; the node graph, the launch checks, the episode driver and
the recorder name the same ones. Driver topics (Interbotix, ros2_control, franka_ros2, MoveIt
Servo) are the vendors' defaults and live with the adapters (``openvla_ros.adapters.topics`` and
the adapter node's parameters).
"""

from __future__ import annotations

__all__ = [
    'ACTION_CHUNK',
    'CAMERA_IMAGE',
    'CLOCK',
    'DIAGNOSTICS',
    'EE_TARGET',
    'ESTOP',
    'EXPERT_ACTION',
    'IMAGE',
    'IMAGE_COMPRESSED',
    'INSTRUCTION',
    'JOINT_STATES',
    'MARKERS',
    'NODE_JOINT_STATES',
    'OBJECT_POSES',
    'POLICY_STATUS',
    'SAFE_EE_TARGET',
    'SAFETY_STATUS',
    'camera_info_topic',
    'compressed_topic',
    'robot_joint_states',
]

# --- the pipeline (absolute names) ---
#: std_msgs/String: the task; an empty one stops the policy.
INSTRUCTION = '/instruction'
#: openvla_ros/ActionChunk: policy -> action limiter (and the monitor's policy watchdog).
ACTION_CHUNK = '/openvla/action_chunk'
#: openvla_ros/EndEffectorTarget: action limiter -> safety monitor.
EE_TARGET = '/openvla/ee_target'
#: openvla_ros/EndEffectorTarget: safety monitor -> arm adapter (the only input that drives it).
SAFE_EE_TARGET = '/openvla/safe_ee_target'
#: openvla_ros/SafetyStatus of the safety monitor.
SAFETY_STATUS = '/openvla/safety_status'
#: openvla_ros/PolicyStatus of the policy (or the scripted expert).
POLICY_STATUS = '/openvla/policy_status'
#: std_msgs/Bool: the e-stop (latches in the monitor until ~/reset).
ESTOP = '/openvla/estop'
#: visualization_msgs/MarkerArray for rviz (workspace box, targets, plan).
MARKERS = '/openvla/markers'
#: openvla_ros/ActionChunk: the scripted expert's labels (learn, record).
EXPERT_ACTION = '/openvla/expert_action'
#: visualization_msgs/MarkerArray: the simulator's true object poses (scripted expert, checks).
OBJECT_POSES = '/openvla/sim/object_poses'
#: diagnostic_msgs/DiagnosticArray.
DIAGNOSTICS = '/diagnostics'
#: rosgraph_msgs/Clock: published by our simulator only (sim:=true).
CLOCK = '/clock'

# --- defaults of inputs from outside the package ---
#: sensor_msgs/Image: the default third-person camera (``camera_topic``).
CAMERA_IMAGE = '/camera/image_raw'
#: sensor_msgs/JointState as franka_ros2 publishes it (merged); Interbotix and our simulator use
#: ``robot_joint_states(robot_name)``.
JOINT_STATES = '/joint_states'

# --- node-relative inputs, remapped by the node graph (graph.py) ---
#: the camera input of the policy node and the safety monitor (raw transport).
IMAGE = 'image'
#: the same input with ``image_transport: compressed``.
IMAGE_COMPRESSED = 'image/compressed'
#: the joint states input of the limiter, the monitor and the adapter.
NODE_JOINT_STATES = 'joint_states'


def compressed_topic(image_topic: str) -> str:
    """The image_transport ``compressed`` topic of a raw image topic."""
    return image_topic + '/compressed'


def camera_info_topic(image_topic: str) -> str:
    """The sensor_msgs/CameraInfo topic next to an image topic (``/camera/image_raw`` ->
    ``/camera/camera_info``)."""
    return image_topic.rsplit('/', 1)[0] + '/camera_info'


def robot_joint_states(robot_name: str) -> str:
    """The joint states of a namespaced driver (Interbotix, our simulator): ``/<robot_name>/
    joint_states``."""
    return f'/{robot_name}/joint_states'
