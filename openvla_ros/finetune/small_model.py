"""A small OpenVLA that learns a simulator task from scratch on a CPU: the real architecture
(fused DINOv2 + SigLIP ViTs read at their penultimate block, the fused GELU projector, Llama,
256-bin action tokens, the padded 32064-token vocabulary), at small widths and depths.

Built and saved as a tiny model is (`openvla_ros.model.tiny.make_tiny_model`, action rows
unscaled); only the sizes differ from `openvla/openvla-7b`, plus the image side: OpenVLA's config
carries `image_sizes` (Prismatic also has 384 px variants) and this model reads 112 px images
(8 x 8 = 64 patches of 14 px instead of 256), which cuts the vision and Llama sequence cost about
4x. The choice was measured (docs/learning.md).

The ViTs' position embeddings start as MAE's fixed 2-D sine-cosine table (He et al. 2022, still
trained here) instead of the tiny random values a pretrained checkpoint overwrites: from scratch,
a 0.02-scale random table is lost beside unit-scale patch features, and a random one is not
smooth, so a block seen at one patch tells nothing about the next. The lateral motion toward the
object is read from exactly that (docs/learning.md, "What limited it").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
from pathlib import Path
from typing import Any

import numpy as np

from openvla_ros.model.tiny import TinySpec

__all__ = ['POS_EMBED_INITS', 'SMALL_SPECS', 'SmallSpec', 'make_small_model', 'sincos_2d']

#: How the ViTs' position embeddings start: 'sincos' (MAE's 2-D table) or 'random' (the tiny
#: models' 0.02-scale noise, what the first checkpoints here used).
POS_EMBED_INITS = ('sincos', 'random')


@dataclass(frozen=True)
class SmallSpec:
    """A small model: the widths and depths of `TinySpec` (one definition of the architecture's
    knobs) and the image side."""

    widths: TinySpec = field(default_factory=lambda: TinySpec(
        vit_embed_dim=64, vit_depth=4, siglip_embed_dim=64, siglip_depth=4, llm_hidden=96,
        llm_intermediate=192, action_row_scale=1.0))
    image_size: int = 112
    pos_embed_init: str = 'sincos'

    def to_dict(self) -> dict[str, Any]:
        """The widths, the image side and the position-embedding start, flat
        (``small_model.json``; the action-row scale is a training detail, not a size)."""
        widths = {k: v for k, v in asdict(self.widths).items() if k != 'action_row_scale'}
        return {**widths, 'image_size': self.image_size, 'pos_embed_init': self.pos_embed_init}


def sincos_2d(grid: int, dim: int) -> np.ndarray:
    """MAE's 2-D sine-cosine position table, ``(grid * grid, dim)`` in row-major patch order (the
    ViTs' order): half the channels encode the row, half the column, each as sines and cosines
    of geometrically spaced frequencies.

    Raises:
        ValueError: ``dim`` is not a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f'a 2-D sine-cosine table needs a width divisible by 4, got {dim}')
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing='ij')

    def encode(positions: np.ndarray) -> np.ndarray:
        angles = positions.reshape(-1, 1) * omega[None, :]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([encode(rows), encode(cols)], axis=1).astype(np.float32)


def _init_pos_embeds(model: Any) -> None:
    """Every ViT's patch position table set to `sincos_2d` (prefix tokens carry none here: the
    DINOv2 featurizer's class and register tokens are outside `pos_embed`, as in timm)."""
    import torch  # noqa: PLC0415

    for name, param in model.named_parameters():
        if not name.endswith('pos_embed'):
            continue
        patches, dim = param.shape[-2:]
        grid = int(round(patches**0.5))
        if grid * grid != patches:
            raise ValueError(f'{name}: {patches} positions are not a square grid of patches')
        with torch.no_grad():
            param.copy_(torch.from_numpy(sincos_2d(grid, dim)).reshape(param.shape))


def _widths(vit: int, vit_depth: int, vit_heads: int, llm: int, llm_layers: int,
            llm_mlp: int) -> TinySpec:
    """Both ViTs alike; the action rows keep their initial scale."""
    return TinySpec(vit, vit_depth, vit_heads, vit, vit_depth, vit_heads, llm, llm_layers, 2,
                    llm_mlp, action_row_scale=1.0)


#: Named sizes; 'small' is what `openvla-ros learn` uses (docs/learning.md has the measurements).
SMALL_SPECS: dict[str, SmallSpec] = {
    'micro': SmallSpec(_widths(32, 3, 2, 64, 2, 128)),
    'small': SmallSpec(),
    'small224': SmallSpec(image_size=224),
    'medium': SmallSpec(_widths(96, 6, 3, 128, 3, 256)),
}


def make_small_model(
    out_dir: str | Path,
    spec: SmallSpec | str = 'small',
    *,
    seed: int = 0,
    norm_stats: dict[str, Any] | None = None,
) -> Path:
    """Write a randomly initialised small OpenVLA checkpoint directory.

    Args:
        out_dir: where to write (created).
        spec: a `SmallSpec` or a name in `SMALL_SPECS`.
        seed: weight seed (deterministic, as the tiny models).
        norm_stats: config norm_stats (default: none; fine-tuning adds the dataset's key).

    Raises:
        KeyError: unknown spec name.
        ValueError: unknown `pos_embed_init` (nothing is written).
    """
    from openvla_ros.model.tiny import build_tiny_model, save_checkpoint  # noqa: PLC0415

    if isinstance(spec, str):
        if spec not in SMALL_SPECS:
            raise KeyError(f'unknown model size {spec!r}; choose one of {sorted(SMALL_SPECS)}')
        spec = SMALL_SPECS[spec]
    if spec.pos_embed_init not in POS_EMBED_INITS:
        raise ValueError(f'pos_embed_init must be one of {POS_EMBED_INITS}, '
                         f'got {spec.pos_embed_init!r}')  # fmt: skip
    model = build_tiny_model(
        seed, spec.widths, norm_stats=dict(norm_stats or {}), image_size=spec.image_size
    )
    if spec.pos_embed_init == 'sincos':
        _init_pos_embeds(model)  # save_checkpoint stores it in bf16, as every other weight
    out = save_checkpoint(model, out_dir)
    (out / 'small_model.json').write_text(json.dumps(spec.to_dict(), indent=2) + '\n')
    return out
