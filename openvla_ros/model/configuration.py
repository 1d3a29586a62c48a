"""`OpenVLAConfig`: the checkpoint's `config.json` as a dataclass, with the official field names.

The HF checkpoint stores an `OpenVLAConfig` (a `PretrainedConfig` subclass in the official remote
code); this dataclass reads and writes the same JSON so our own model code loads the released
checkpoints unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
import json
from pathlib import Path
from typing import Any

from openvla_ros.model import constants as const
from openvla_ros.model.errors import InvalidConfigError, MissingConfigError

#: Fields we require in `text_config` to build the Llama language model.
_TEXT_CONFIG_REQUIRED = ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'vocab_size')


@dataclass
class OpenVLAConfig:
    """Model configuration of an `OpenVLAForActionPrediction` checkpoint.

    Field names and defaults follow `configuration_prismatic.py` (`PrismaticConfig` +
    `OpenVLAConfig`) for the released `dinosiglip-vit-so-224px` + `llama2-7b-pure` model.
    `timm_model_kwargs` is ours: extra keyword arguments for `timm.create_model` (tiny test models
    shrink the real backbones with it); real checkpoints do not carry it and it defaults to no
    overrides.
    """

    vision_backbone_id: str = const.VISION_BACKBONE_ID
    llm_backbone_id: str = const.LLM_BACKBONE_ID
    arch_specifier: str = const.ARCH_SPECIFIER
    use_fused_vision_backbone: bool = True
    image_resize_strategy: str = const.IMAGE_RESIZE_STRATEGY
    text_config: dict[str, Any] = field(default_factory=lambda: dict(const.LLAMA2_7B_TEXT_CONFIG))
    llm_max_length: int = 2048
    pad_token_id: int = const.PAD_TOKEN_ID
    pad_to_multiple_of: int = const.PAD_TO_MULTIPLE_OF
    output_projector_states: bool = False
    timm_model_ids: list[str] = field(default_factory=lambda: list(const.TIMM_MODEL_IDS))
    timm_override_act_layers: list[str | None] = field(
        default_factory=lambda: list(const.TIMM_OVERRIDE_ACT_LAYERS)
    )
    image_sizes: list[int] = field(default_factory=lambda: list(const.IMAGE_SIZES))
    n_action_bins: int = const.N_ACTION_BINS
    norm_stats: dict[str, Any] | None = None
    timm_model_kwargs: list[dict[str, Any]] | None = None
    torch_dtype: str = 'bfloat16'

    def __post_init__(self) -> None:
        """Reject configurations this implementation cannot run, naming the field."""
        if not self.use_fused_vision_backbone:
            raise InvalidConfigError(
                f'use_fused_vision_backbone={self.use_fused_vision_backbone!r}: only the fused '
                'DINOv2 + SigLIP backbone of OpenVLA is supported'
            )
        if len(self.timm_model_ids) != 2:
            raise InvalidConfigError(
                f'timm_model_ids must name 2 backbones, got {self.timm_model_ids!r}'
            )
        if len(self.image_sizes) != 2 or len(self.timm_override_act_layers) != 2:
            raise InvalidConfigError(
                f'image_sizes={self.image_sizes!r} and timm_override_act_layers='
                f'{self.timm_override_act_layers!r} must have one entry per backbone'
            )
        if self.image_resize_strategy != const.IMAGE_RESIZE_STRATEGY:
            raise InvalidConfigError(
                f'image_resize_strategy={self.image_resize_strategy!r}: only '
                f'{const.IMAGE_RESIZE_STRATEGY!r} (OpenVLA) is supported'
            )
        if not self.arch_specifier.endswith('fused-gelu-mlp'):
            raise InvalidConfigError(
                f'arch_specifier={self.arch_specifier!r}: only the fused-gelu-mlp projector '
                'is supported'
            )
        if self.n_action_bins < 2:
            raise InvalidConfigError(f'n_action_bins must be >= 2, got {self.n_action_bins!r}')
        model_type = self.text_config.get('model_type', 'llama')
        if model_type != 'llama':
            raise InvalidConfigError(
                f'text_config.model_type={model_type!r}: only llama is supported'
            )
        missing = [k for k in _TEXT_CONFIG_REQUIRED if k not in self.text_config]
        if missing:
            raise InvalidConfigError(f'text_config lacks {missing}')
        if self.timm_model_kwargs is not None and len(self.timm_model_kwargs) != 2:
            raise InvalidConfigError(
                f'timm_model_kwargs must have 2 entries, got {self.timm_model_kwargs!r}'
            )

    # --- derived values ---------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        """Width of the language model (the projector's output)."""
        return int(self.text_config['hidden_size'])

    @property
    def vocab_size(self) -> int:
        """Padded vocabulary size of the embedding table (32064 for OpenVLA)."""
        return int(self.text_config['vocab_size'])

    @property
    def action_vocab_size(self) -> int:
        """Vocabulary used to de-tokenize actions: padded size minus `pad_to_multiple_of`."""
        return self.vocab_size - self.pad_to_multiple_of

    # --- JSON -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpenVLAConfig:
        """Build from the JSON of `config.json`, ignoring HF bookkeeping fields we do not use.

        Raises:
            InvalidConfigError: a field has the wrong type or an unsupported value.
        """
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if data.get('model_type', 'openvla') != 'openvla':
            raise InvalidConfigError(
                f'model_type={data.get("model_type")!r}: expected an OpenVLA checkpoint '
                '("openvla")'
            )
        try:
            return cls(**kwargs)
        except (TypeError, AttributeError) as exc:
            raise InvalidConfigError(f'invalid config.json: {exc}') from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> OpenVLAConfig:
        """Read `config.json`.

        Raises:
            MissingConfigError: the file does not exist or is not valid JSON.
            InvalidConfigError: a field is unsupported.
        """
        path = Path(path)
        if not path.is_file():
            raise MissingConfigError(
                f'no {path.name} in {path.parent} (not an OpenVLA checkpoint?)'
            )
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MissingConfigError(f'cannot read {path}: {exc}') from None
        if not isinstance(data, dict):
            raise MissingConfigError(f'{path} does not hold a JSON object')
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """`config.json` content in the layout of `openvla/openvla-7b` (plus our own fields)."""
        data: dict[str, Any] = {
            'architectures': ['OpenVLAForActionPrediction'],
            'model_type': 'openvla',
            'hf_llm_id': 'meta-llama/Llama-2-7b-hf',
        }
        data.update(asdict(self))
        if data['timm_model_kwargs'] is None:
            del data['timm_model_kwargs']
        return data

    def to_json_file(self, path: str | Path) -> None:
        """Write `config.json` (sorted keys, 2-space indent, like `save_pretrained`)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + '\n')
