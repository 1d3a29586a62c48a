"""A small OpenVLA that learns a simulator task from scratch on a CPU: the real architecture
(fused DINOv2 + SigLIP ViTs read at their penultimate block, the fused GELU projector, Llama,
256-bin action tokens, the padded 32064-token vocabulary), at small widths and depths.

Built and saved as a tiny model is (`openvla_ros.model.tiny.make_tiny_model`, action rows
unscaled); only the sizes differ from `openvla/openvla-7b`, plus the image side: OpenVLA's config
carries `image_sizes` (Prismatic also has 384 px variants) and this model reads 112 px images
(8 x 8 = 64 patches of 14 px instead of 256), which cuts the vision and Llama sequence cost about
4x. The choice was measured (docs/learning.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
from pathlib import Path
from typing import Any

from openvla_ros.model.tiny import TinySpec

__all__ = ['SMALL_SPECS', 'SmallSpec', 'make_small_model']


@dataclass(frozen=True)
class SmallSpec:
    """A small model: the widths and depths of `TinySpec` (one definition of the architecture's
    knobs) and the image side."""

    widths: TinySpec = field(default_factory=lambda: TinySpec(
        vit_embed_dim=64, vit_depth=4, siglip_embed_dim=64, siglip_depth=4, llm_hidden=96,
        llm_intermediate=192, action_row_scale=1.0))
    image_size: int = 112

    def to_dict(self) -> dict[str, Any]:
        """The widths and the image side, flat (``small_model.json``; the action-row scale is a
        training detail, not a size)."""
        widths = {k: v for k, v in asdict(self.widths).items() if k != 'action_row_scale'}
        return {**widths, 'image_size': self.image_size}


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
    """
    from openvla_ros.model.tiny import make_tiny_model  # noqa: PLC0415

    if isinstance(spec, str):
        if spec not in SMALL_SPECS:
            raise KeyError(f'unknown model size {spec!r}; choose one of {sorted(SMALL_SPECS)}')
        spec = SMALL_SPECS[spec]
    out = make_tiny_model(
        out_dir,
        seed=seed,
        spec=spec.widths,
        norm_stats=dict(norm_stats or {}),
        image_size=spec.image_size,
    )
    (out / 'small_model.json').write_text(json.dumps(spec.to_dict(), indent=2) + '\n')
    return out
