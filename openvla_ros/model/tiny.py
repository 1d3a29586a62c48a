"""Tiny OpenVLA checkpoints: the real architecture, code path and tokenizer at toy size.

`make_tiny_model(dir, seed=0)` writes a randomly initialised model in the layout of
`openvla/openvla-7b` (config.json with the official fields and the real `bridge_orig` /
`fractal20220817_data` statistics, preprocessor_config.json, tokenizer files, three safetensors
shards with `model.safetensors.index.json`, dataset_statistics.json, generation_config.json) in
well under a second. The backbones are the real timm models with `embed_dim`/`depth`/`num_heads`
overridden (`timm_model_kwargs` in config.json); the language model keeps the padded 32064-token
vocabulary.

Weights come from one `torch.Generator` seeded with `seed`, drawn tensor by tensor in sorted key
order with `torch.randn`, so the same seed gives bit-identical weights wherever torch's CPU normal
sampler is unchanged (checked with torch 2.14.1; `weights_sha256` detects a change). The rows of
`lm_head` that produce the 256 action tokens are scaled up so the untrained model mostly emits
action tokens, like a trained one.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
import math
from pathlib import Path
import shutil
from typing import Any

from safetensors.torch import save_file
import torch

from openvla_ros.model import constants as const
from openvla_ros.model.configuration import OpenVLAConfig
from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.processor import ImageTransformConfig

#: Number of safetensors shards written (the released checkpoint has three).
TINY_NUM_SHARDS = 3


@dataclass(frozen=True)
class TinySpec:
    """Toy widths of a tiny model; everything else (names, patch size, vocabulary) is real."""

    vit_embed_dim: int = 32
    vit_depth: int = 3
    vit_heads: int = 2
    siglip_embed_dim: int = 32
    siglip_depth: int = 3
    siglip_heads: int = 2
    llm_hidden: int = 64
    llm_layers: int = 2
    llm_heads: int = 2
    llm_intermediate: int = 128
    action_row_scale: float = 2.0


def load_sample_norm_stats() -> dict[str, Any]:
    """The real `bridge_orig` and `fractal20220817_data` action statistics (package asset)."""
    return json.loads(const.NORM_STATS_SAMPLE.read_text())


def tiny_config(
    spec: TinySpec | None = None,
    norm_stats: dict[str, Any] | None = None,
    image_size: int | None = None,
) -> OpenVLAConfig:
    """The `OpenVLAConfig` of a tiny model; image_size: the square input side of both backbones
    (default: OpenVLA's, `constants.IMAGE_SIZES`)."""
    spec = spec or TinySpec()
    sizes = {} if image_size is None else {'image_sizes': [image_size, image_size]}
    text_config = dict(const.LLAMA2_7B_TEXT_CONFIG)
    text_config.update(
        hidden_size=spec.llm_hidden,
        intermediate_size=spec.llm_intermediate,
        num_hidden_layers=spec.llm_layers,
        num_attention_heads=spec.llm_heads,
        num_key_value_heads=spec.llm_heads,
    )
    return OpenVLAConfig(
        text_config=text_config,
        norm_stats=norm_stats if norm_stats is not None else load_sample_norm_stats(),
        timm_model_kwargs=[
            {
                'embed_dim': spec.vit_embed_dim,
                'depth': spec.vit_depth,
                'num_heads': spec.vit_heads,
            },
            {
                'embed_dim': spec.siglip_embed_dim,
                'depth': spec.siglip_depth,
                'num_heads': spec.siglip_heads,
            },
        ],
        **sizes,
    )


def init_tiny_weights(model: OpenVLAForActionPrediction, seed: int, spec: TinySpec) -> None:
    """Deterministically fill every parameter (sorted key order, one generator)."""
    generator = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            param = params[name]
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            if 'norm' in name and name.endswith('.weight'):
                value = 1.0 + 0.1 * noise
            elif name.endswith('scale_factor'):
                value = 0.5 + 0.1 * noise
            elif name.endswith('embed_tokens.weight'):
                value = noise  # unit-RMS token embeddings, like the patch embeddings
            elif name.endswith('.weight') and param.dim() >= 2:
                value = noise / math.sqrt(param[0].numel())  # unit-variance outputs: inputs matter
            else:
                value = 0.02 * noise
            if name == 'language_model.lm_head.weight':
                first = const.LLAMA2_VOCAB_SIZE - const.N_ACTION_BINS
                value[first : const.LLAMA2_VOCAB_SIZE] *= spec.action_row_scale
            param.copy_(value)


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Digest of names, dtypes, shapes and bytes of a state dict (order independent)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().contiguous().cpu()
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b'')
    return digest.hexdigest()


def build_tiny_model(
    seed: int = 0,
    spec: TinySpec | None = None,
    *,
    norm_stats: dict[str, Any] | None = None,
    image_size: int | None = None,
) -> OpenVLAForActionPrediction:
    """A tiny model in memory, weights rounded to bfloat16 like the stored checkpoint
    (norm_stats and image_size as in `tiny_config`)."""
    spec = spec or TinySpec()
    torch_state = torch.random.get_rng_state()
    try:
        model = OpenVLAForActionPrediction(tiny_config(spec, norm_stats, image_size))
    finally:
        torch.random.set_rng_state(torch_state)  # building must not disturb the caller's RNG
    init_tiny_weights(model, seed, spec)
    model.to(torch.bfloat16).to(torch.float32)
    return model.eval()


def save_checkpoint(
    model: OpenVLAForActionPrediction, out_dir: str | Path, *, num_shards: int = TINY_NUM_SHARDS
) -> Path:
    """Write `model` in the HF layout of `openvla-7b` (bf16 shards + index + configs + tokenizer).

    Args:
        model: the model to save (its `config` is written too).
        out_dir: directory, created if needed.
        num_shards: safetensors shards to split the weights into.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    names = sorted(state)
    total = sum(t.numel() * t.element_size() for t in state.values())
    budget = total / num_shards
    shards: list[list[str]] = [[]]
    size = 0
    for name in names:
        nbytes = state[name].numel() * state[name].element_size()
        if shards[-1] and size + nbytes > budget and len(shards) < num_shards:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    weight_map: dict[str, str] = {}
    for index, shard in enumerate(shards, start=1):
        filename = f'model-{index:05d}-of-{len(shards):05d}.safetensors'
        save_file({k: state[k] for k in shard}, str(out / filename), metadata={'format': 'pt'})
        weight_map.update({k: filename for k in shard})
    index_json = {'metadata': {'total_size': total}, 'weight_map': weight_map}
    (out / const.SAFETENSORS_INDEX_NAME).write_text(
        json.dumps(index_json, indent=2, sort_keys=True) + '\n'
    )
    model.config.to_json_file(out / const.CONFIG_NAME)
    # the image side the model was built for (OpenVLA's 224 px unless its config says otherwise)
    image = ImageTransformConfig(image_sizes=tuple(model.config.image_sizes))
    preprocessor = image.to_preprocessor_config()
    (out / const.PREPROCESSOR_CONFIG_NAME).write_text(json.dumps(preprocessor, indent=2) + '\n')
    stats = model.config.norm_stats or {}
    (out / const.DATASET_STATISTICS_NAME).write_text(json.dumps(stats, indent=2) + '\n')
    generation = {
        'bos_token_id': const.BOS_TOKEN_ID,
        'eos_token_id': const.EOS_TOKEN_ID,
        'pad_token_id': model.config.pad_token_id,
    }
    (out / 'generation_config.json').write_text(json.dumps(generation, indent=2) + '\n')
    for name in const.TOKENIZER_FILES:
        shutil.copyfile(const.TOKENIZER_DIR / name, out / name)
    return out


def make_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    spec: TinySpec | None = None,
    norm_stats: dict[str, Any] | None = None,
    image_size: int | None = None,
) -> Path:
    """Build and save a tiny OpenVLA checkpoint; returns the directory.

    Args:
        out_dir: where to write (created if needed; existing files of the same names are replaced).
        seed: weight seed; the same seed gives the same weights.
        spec: toy widths (default `TinySpec()`).
        norm_stats: config norm_stats (default: the real sample statistics).
        image_size: square input side of both backbones, also in preprocessor_config.json
            (default: OpenVLA's 224 px).
    """
    spec = spec or TinySpec()
    model = build_tiny_model(seed, spec, norm_stats=norm_stats, image_size=image_size)
    return save_checkpoint(model, out_dir)
