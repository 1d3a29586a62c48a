"""Recording demonstrations: rosbag2 files -> episodes -> an on-disk dataset with statistics.

No rclpy: bags are read with rosbags. `record_bags(paths, RecordConfig.from_profile(...))` builds
episodes, `write_dataset` stores them, `Dataset(dir)` reads them back (see docs/finetune.md).
"""

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
from openvla_ros.data.messages import make_typestore
from openvla_ros.data.recording import (
    ACTION_SOURCES,
    build_episodes,
    Episode,
    read_bag,
    record_bags,
    RecordConfig,
    Streams,
)
from openvla_ros.data.statistics import (
    compute_action_statistics,
    read_statistics_file,
    write_statistics_file,
)

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
    'record_bags',
    'write_dataset',
    'write_statistics_file',
]
