"""Recording demonstrations: rosbag2 files -> episodes -> an on-disk dataset with statistics.

No rclpy: bags are read with rosbags. `episodes_from_bags(paths, RecordConfig.from_profile(...))`
builds episodes, `write_dataset` stores them, `Dataset(dir)` reads them back (see
docs/finetune.md).
"""

# Lazy: `openvla_ros.msgio.fields` raises `openvla_ros.data.errors.BagReadError`, and
# `bag_episodes` imports `msgio.fields`; importing the package must not load `bag_episodes`, or
# `import openvla_ros.msgio.fields` first would meet a half-initialised module (PEP 562, as in
# openvla_ros.model).
from openvla_ros import lazy_exports

_EXPORTS: dict[str, str] = {
    'ACTION_SOURCES': 'openvla_ros.data.bag_episodes',
    'build_episodes': 'openvla_ros.data.bag_episodes',
    'Episode': 'openvla_ros.data.bag_episodes',
    'episodes_from_bags': 'openvla_ros.data.bag_episodes',
    'read_bag': 'openvla_ros.data.bag_episodes',
    'RecordConfig': 'openvla_ros.data.bag_episodes',
    'Streams': 'openvla_ros.data.bag_episodes',
    'Dataset': 'openvla_ros.data.dataset',
    'DATASET_FORMAT': 'openvla_ros.data.dataset',
    'DATASET_VERSION': 'openvla_ros.data.dataset',
    'decode_jpeg': 'openvla_ros.data.dataset',
    'encode_jpeg': 'openvla_ros.data.dataset',
    'write_dataset': 'openvla_ros.data.dataset',
    'BagReadError': 'openvla_ros.data.errors',
    'DataError': 'openvla_ros.data.errors',
    'DatasetFormatError': 'openvla_ros.data.errors',
    'EmptyDatasetError': 'openvla_ros.data.errors',
    'MissingTopicError': 'openvla_ros.data.errors',
    'NoImagesError': 'openvla_ros.data.errors',
    'compute_action_statistics': 'openvla_ros.data.statistics',
    'read_statistics_file': 'openvla_ros.data.statistics',
    'write_statistics_file': 'openvla_ros.data.statistics',
    'make_typestore': 'openvla_ros.msgio.fields',
}

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

__all__ = sorted(_EXPORTS)
