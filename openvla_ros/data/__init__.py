"""Recording demonstrations: rosbag2 files -> episodes -> an on-disk dataset with statistics.

No rclpy: bags are read with rosbags. `episodes_from_bags(paths, RecordConfig.from_profile(...))`
builds episodes, `write_dataset` stores them, `Dataset(dir)` reads them back (see
docs/finetune.md).
"""

from openvla_ros.data.bag_episodes import (
    ACTION_SOURCES,
    build_episodes,
    Episode,
    episodes_from_bags,
    read_bag,
    RecordConfig,
    Streams,
)
from openvla_ros.data.dataset import (
    Dataset,
    DATASET_FORMAT,
    DATASET_VERSION,
    decode_jpeg,
    encode_jpeg,
    write_dataset,
)
from openvla_ros.data.errors import (
    BagReadError,
    DataError,
    DatasetFormatError,
    EmptyDatasetError,
    MissingTopicError,
    NoImagesError,
)
from openvla_ros.data.statistics import (
    compute_action_statistics,
    read_statistics_file,
    write_statistics_file,
)
from openvla_ros.msgio.fields import make_typestore

__all__ = [
    'ACTION_SOURCES',
    'DATASET_FORMAT',
    'DATASET_VERSION',
    'BagReadError',
    'DataError',
    'Dataset',
    'DatasetFormatError',
    'EmptyDatasetError',
    'Episode',
    'MissingTopicError',
    'NoImagesError',
    'RecordConfig',
    'Streams',
    'build_episodes',
    'compute_action_statistics',
    'decode_jpeg',
    'encode_jpeg',
    'make_typestore',
    'read_bag',
    'read_statistics_file',
    'episodes_from_bags',
    'write_dataset',
    'write_statistics_file',
]
