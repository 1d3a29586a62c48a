"""openvla_ros: OpenVLA on ROS 2 robot arms.

The core sub-packages (``model``, ``control``, ``sim``, ``adapters``) never import rclpy; the ROS
shell lives in ``openvla_ros.nodes`` and ``openvla_ros.harness`` (docs/design.md maps the layout).
"""

# rosidl installs the generated interfaces (``openvla_ros.msg``) into site-packages/openvla_ros,
# which may differ from this directory (an editable checkout): both directories form this package.
__path__ = __import__('pkgutil').extend_path(__path__, __name__)

__version__ = '0.1.0'


def lazy_exports(namespace: dict, exports: dict) -> tuple:
    """PEP 562 ``__getattr__`` and ``__dir__`` for a package whose public names load from their
    modules on first use (``exports``: name -> module), so importing the package stays light
    (no torch for ``openvla_ros.model``, no scipy for ``openvla_ros.adapters``)."""
    import importlib

    def get(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f'module {namespace["__name__"]!r} has no attribute {name!r}')
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def names() -> list:
        return sorted(set(namespace) | set(exports))

    return get, names
