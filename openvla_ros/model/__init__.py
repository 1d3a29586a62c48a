"""OpenVLA inference core: model, processor, action tokenizer, loading, tiny models (no rclpy).

Use `OpenVLAPolicy.load(dir_or_hub_id)` then `policy.predict(image, instruction, unnorm_key)`.
"""

# Lazy: `import openvla_ros.model.choices` (the CLI's --help, the launch files) must not load
# torch; a name below is imported from its module on first use (PEP 562).
from openvla_ros import lazy_exports

_EXPORTS: dict[str, str] = {
    'ActionStats': 'openvla_ros.model.action_tokenizer',
    'ActionTokenizer': 'openvla_ros.model.action_tokenizer',
    'AdapterError': 'openvla_ros.model.errors',
    'CheckpointError': 'openvla_ros.model.errors',
    'CorruptShardError': 'openvla_ros.model.errors',
    'ImageTransformConfig': 'openvla_ros.model.processor',
    'InvalidConfigError': 'openvla_ros.model.errors',
    'InvalidInputError': 'openvla_ros.model.errors',
    'load_model': 'openvla_ros.model.loading',
    'LoadedModel': 'openvla_ros.model.loading',
    'make_tiny_model': 'openvla_ros.model.tiny',
    'MissingConfigError': 'openvla_ros.model.errors',
    'MissingShardError': 'openvla_ros.model.errors',
    'MissingTokenizerError': 'openvla_ros.model.errors',
    'ModelNotFoundError': 'openvla_ros.model.errors',
    'NonFiniteActionError': 'openvla_ros.model.errors',
    'normalize': 'openvla_ros.model.action_tokenizer',
    'OpenVLAConfig': 'openvla_ros.model.configuration',
    'OpenVLAError': 'openvla_ros.model.errors',
    'OpenVLAForActionPrediction': 'openvla_ros.model.modeling',
    'OpenVLAPolicy': 'openvla_ros.model.policy',
    'OpenVLAProcessor': 'openvla_ros.model.processor',
    'Prediction': 'openvla_ros.model.policy',
    'QuantizationError': 'openvla_ros.model.errors',
    'resolve_unnorm_key': 'openvla_ros.model.action_tokenizer',
    'StateDictMismatchError': 'openvla_ros.model.errors',
    'TinySpec': 'openvla_ros.model.tiny',
    'unnormalize': 'openvla_ros.model.action_tokenizer',
    'UnnormKeyError': 'openvla_ros.model.errors',
}


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

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
