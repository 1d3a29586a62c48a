"""OpenVLA inference core: model, processor, action tokenizer, loading, tiny models (no rclpy).

Use `OpenVLAPolicy.load(dir_or_hub_id)` then `policy.predict(image, instruction, unnorm_key)`.
"""

from openvla_ros.model.action_tokenizer import (
    ActionStats,
    ActionTokenizer,
    normalize,
    resolve_unnorm_key,
    unnormalize,
)
from openvla_ros.model.configuration import OpenVLAConfig
from openvla_ros.model.errors import (
    AdapterError,
    CheckpointError,
    CorruptShardError,
    InvalidConfigError,
    InvalidInputError,
    MissingConfigError,
    MissingShardError,
    MissingTokenizerError,
    ModelNotFoundError,
    NonFiniteActionError,
    OpenVLAError,
    QuantizationError,
    StateDictMismatchError,
    UnnormKeyError,
)
from openvla_ros.model.loading import load_model, LoadedModel
from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.policy import OpenVLAPolicy, Prediction
from openvla_ros.model.processor import ImageTransformConfig, OpenVLAProcessor
from openvla_ros.model.tiny import make_tiny_model, TinySpec

__all__ = [
    'ActionStats',
    'ActionTokenizer',
    'AdapterError',
    'CheckpointError',
    'CorruptShardError',
    'ImageTransformConfig',
    'InvalidConfigError',
    'InvalidInputError',
    'LoadedModel',
    'MissingConfigError',
    'MissingShardError',
    'MissingTokenizerError',
    'ModelNotFoundError',
    'NonFiniteActionError',
    'OpenVLAConfig',
    'OpenVLAError',
    'OpenVLAForActionPrediction',
    'OpenVLAPolicy',
    'OpenVLAProcessor',
    'Prediction',
    'QuantizationError',
    'StateDictMismatchError',
    'TinySpec',
    'UnnormKeyError',
    'load_model',
    'make_tiny_model',
    'normalize',
    'resolve_unnorm_key',
    'unnormalize',
]
