"""Robot profiles: ``config/<profile>.yaml``, read the way ``ros2 launch`` reads them (pure, no
rclpy).

A profile file is a ROS 2 parameter file: a ``/**`` section shared by every node and one section
per node name. The launch files hand the same file to each node; ``load_profile`` reads it for the
in-process runner and the CLI, flattening nested mappings into ROS's dotted parameter names
(``limiter.max_linear_velocity``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ['PROFILES', 'Profile', 'ProfileError', 'config_dir', 'load_profile', 'share_dir']

PROFILES = ('widowx_bridge', 'franka_tabletop', 'franka_droid')
PACKAGE = 'openvla_ros'


class ProfileError(ValueError):
    """A profile that does not exist or does not parse; the message says which and why."""


def share_dir() -> Path:
    """The package's share directory: the checkout when run from source, else the ament index."""
    source = Path(__file__).resolve().parents[2]  # openvla_ros/bringup/profiles.py -> checkout
    if (source / 'config').is_dir() and (source / 'package.xml').is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415
    except ImportError:
        raise ProfileError(
            'cannot find the openvla_ros share directory: not in a checkout and '
            'ament_index_python is not installed'
        ) from None
    return Path(get_package_share_directory(PACKAGE))


def config_dir() -> Path:
    return share_dir() / 'config'


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f'{prefix}.{key}' if prefix else str(key), sub, out)
    else:
        out[prefix] = value


@dataclass(frozen=True)
class Profile:
    """One robot profile: its name, file and parameters per node."""

    name: str
    path: Path
    common: dict[str, Any]
    nodes: dict[str, dict[str, Any]]

    def node_params(self, node_name: str) -> dict[str, Any]:
        """Flattened parameters of node_name: the ``/**`` section, then the node's own on top."""
        out: dict[str, Any] = {}
        _flatten('', self.common, out)
        _flatten('', self.nodes.get(node_name, {}), out)
        return out

    def section(self, node_name: str, key: str) -> dict[str, Any]:
        """A nested mapping of a node's section (e.g. ``section('safety_monitor', 'safety')``)."""
        value = self.nodes.get(node_name, {}).get(key, {})
        if not isinstance(value, dict):
            raise ProfileError(f'{self.path}: {node_name}.{key} must be a mapping, got {value!r}')
        return dict(value)

    def get(self, key: str, default: Any = None) -> Any:
        """A key of the shared ``/**`` section."""
        return self.common.get(key, default)


def load_profile(name_or_path: str | Path) -> Profile:
    """Reads a profile by name (``widowx_bridge``) or by path to a YAML file.

    Raises:
        ProfileError: unknown name, missing file, YAML error, or a file that is not a parameter
        file.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in ('.yaml', '.yml'):
        path = candidate
    else:
        path = config_dir() / f'{name_or_path}.yaml'
        if not path.is_file():
            raise ProfileError(
                f'unknown profile {str(name_or_path)!r}; known: {", ".join(PROFILES)}'
            )
    if not path.is_file():
        raise ProfileError(f'profile file {path} does not exist')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f'{path}: invalid YAML: {exc}') from None
    if not isinstance(data, dict):
        raise ProfileError(f'{path}: expected a mapping of node names to ros__parameters')
    common: dict[str, Any] = {}
    nodes: dict[str, dict[str, Any]] = {}
    for key, section in data.items():
        if not isinstance(section, dict) or set(section) != {'ros__parameters'}:
            raise ProfileError(
                f'{path}: section {key!r} must hold exactly one key, ros__parameters'
            )
        params = section['ros__parameters'] or {}
        if key == '/**':
            common = params
        else:
            nodes[str(key).lstrip('/')] = params
    return Profile(name=path.stem, path=path, common=common, nodes=nodes)
