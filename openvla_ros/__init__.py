"""openvla_ros: OpenVLA on ROS 2 robot arms.

The core sub-packages (``model``, ``control``, ``sim``, ``data``) never import rclpy; the ROS shell lives in
``openvla_ros.nodes`` and ``openvla_ros.runner``.
"""

# The generated interfaces (``openvla_ros.msg``) are installed by rosidl into site-packages/openvla_ros, which
# may be a different directory from this one (an editable checkout): let both directories form this package.
__path__ = __import__('pkgutil').extend_path(__path__, __name__)

__version__ = '0.1.0'
