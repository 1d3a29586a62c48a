"""Exceptions of the model package: one class per failure a caller may want to handle.

Every class derives from `OpenVLAError`, so a CLI or a node can turn all known failures into one
clean message; input and key errors also derive from ValueError, so generic callers that catch
ValueError keep working.
"""

from __future__ import annotations


class OpenVLAError(Exception):
    """Base class of every known failure of the OpenVLA inference core."""


class CheckpointError(OpenVLAError):
    """A checkpoint directory or hub id cannot be loaded."""


class ModelNotFoundError(CheckpointError):
    """Neither a local directory nor a (cached or downloadable) hub snapshot exists."""


class MissingConfigError(CheckpointError):
    """The checkpoint has no readable `config.json`."""


class InvalidConfigError(CheckpointError, ValueError):
    """`config.json` is present but a field is missing or unsupported."""


class MissingShardError(CheckpointError):
    """A safetensors shard named by the index (or the single `model.safetensors`) is missing."""


class CorruptShardError(CheckpointError):
    """A safetensors shard exists but cannot be parsed."""


class MissingTokenizerError(CheckpointError):
    """The checkpoint has no tokenizer files (`tokenizer.json` / `tokenizer_config.json`)."""


class StateDictMismatchError(CheckpointError):
    """The checkpoint's tensor names or shapes do not match the model (missing/unexpected)."""


class AdapterError(CheckpointError):
    """A LoRA adapter directory cannot be loaded or applied."""


class QuantizationError(OpenVLAError, RuntimeError):
    """The requested bitsandbytes quantization is unavailable on this machine or device."""


class UnnormKeyError(OpenVLAError, ValueError):
    """The dataset key for action un-normalization is unknown, or needed but not given."""


class InvalidInputError(OpenVLAError, ValueError):
    """An image or instruction handed to the policy is not usable."""


class NonFiniteActionError(OpenVLAError, RuntimeError):
    """The model produced a NaN or infinite action (never returned to a robot)."""
