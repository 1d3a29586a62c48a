"""openvla_ros: OpenVLA on ROS 2 robot arms.

The core sub-packages (``model``, ``control``, ``sim``, ``adapters``) never import rclpy; the ROS
shell lives in ``openvla_ros.nodes`` and ``openvla_ros.harness.runner``.
"""

# rosidl installs the generated interfaces (``openvla_ros.msg``) into site-packages/openvla_ros,
# which may differ from this directory (an editable checkout): both directories form this package.
__path__ = __import__('pkgutil').extend_path(__path__, __name__)

__version__ = '0.1.0'
