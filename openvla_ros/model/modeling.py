"""OpenVLA-7B as plain PyTorch modules: fused DINOv2+SigLIP backbone, GELU-MLP projector, Llama-2.

The module tree and parameter names are those of `modeling_prismatic.py`'s
`OpenVLAForActionPrediction` (`vision_backbone.featurizer.*`, `vision_backbone.fused_featurizer.*`,
`projector.fc{1,2,3}.*`, `language_model.model.*`, `language_model.lm_head.weight`, LayerScale as
`...ls{1,2}.scale_factor`), so `load_state_dict(strict=True)` accepts the released safetensors
shards. Decoding is our own greedy loop over a static KV cache (`decode='fast'`) or transformers'
`generate` (`decode='reference'`, the official path), or our own Llama forward replayed from CUDA
graphs (`decode='graph'`, `openvla_ros.model.decoding`; eager on the CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import timm
import torch
from torch import nn
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, StaticCache

from openvla_ros.model import constants as const
from openvla_ros.model.choices import DECODE_MODES
from openvla_ros.model.configuration import OpenVLAConfig

DecodeMode = Literal['fast', 'reference', 'graph']
#: The attention kernel of the language model is chosen here and only here.
DEFAULT_ATTN_IMPLEMENTATION = 'sdpa'


# --- vision ---------------------------------------------------------------------------------
class LayerScale(nn.Module):
    """timm's LayerScale with the parameter named `scale_factor`, as stored in the checkpoint.

    HF's loader rewrites parameter names containing `gamma`, so the official code renamed timm's
    `gamma`; keeping that name lets the released shards load without key renaming.
    """

    def __init__(self, dim: int, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.scale_factor = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(self.scale_factor) if self.inplace else x * self.scale_factor


def _rename_layer_scale(vit: nn.Module) -> None:
    """Replace every timm LayerScale (param `gamma`) in `vit` by ours (param `scale_factor`)."""
    from timm.layers import LayerScale as TimmLayerScale

    for parent in list(vit.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, TimmLayerScale):
                replacement = LayerScale(child.gamma.shape[0], inplace=child.inplace)
                replacement.scale_factor = nn.Parameter(child.gamma.detach().clone())
                setattr(parent, name, replacement)


def create_featurizer(
    timm_model_id: str, image_size: int, act_layer: str | None, extra: dict[str, Any] | None = None
) -> nn.Module:
    """One timm ViT as the official code builds it (no weights, no head, LayerScale renamed).

    Args:
        timm_model_id: e.g. `vit_large_patch14_reg4_dinov2.lvd142m`.
        image_size: input side (224).
        act_layer: `timm_override_act_layers` entry (None for OpenVLA).
        extra: extra `timm.create_model` keyword arguments (tiny models override dims with it).
    """
    vit = timm.create_model(
        timm_model_id,
        pretrained=False,
        num_classes=0,
        img_size=image_size,
        act_layer=act_layer,
        **(extra or {}),
    )
    _rename_layer_scale(vit)
    return vit


def penultimate_patch_tokens(vit: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Patch tokens after the second-to-last block, without prefix/register tokens or final norm.

    The same values as the official `get_intermediate_layers(x, n={len(blocks) - 2})`; the last
    block is skipped (`stop_early`), its parameters stay in the module so the checkpoint loads
    strictly.
    """
    index = len(vit.blocks) - 2
    features = vit.forward_intermediates(
        images,
        indices=[index],
        norm=False,
        stop_early=True,
        output_fmt='NLC',
        intermediates_only=True,
    )
    return features[0]  # (B, N, D)


class FusedVisionBackbone(nn.Module):
    """DINOv2 (`featurizer`) and SigLIP (`fused_featurizer`) on one image, concatenated."""

    def __init__(self, config: OpenVLAConfig) -> None:
        super().__init__()
        extra = config.timm_model_kwargs or [{}, {}]
        self.featurizer = create_featurizer(
            config.timm_model_ids[0],
            config.image_sizes[0],
            config.timm_override_act_layers[0],
            extra[0],
        )
        self.fused_featurizer = create_featurizer(
            config.timm_model_ids[1],
            config.image_sizes[1],
            config.timm_override_act_layers[1],
            extra[1],
        )
        self.embed_dim = int(self.featurizer.embed_dim + self.fused_featurizer.embed_dim)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 6, H, W) channel-stacked images -> (B, 256, D_dino + D_siglip) patch features."""
        img, img_fused = torch.split(pixel_values, [3, 3], dim=1)  # (B, 3, H, W) each
        patches = penultimate_patch_tokens(self.featurizer, img)  # (B, N, D1)
        patches_fused = penultimate_patch_tokens(self.fused_featurizer, img_fused)  # (B, N, D2)
        return torch.cat([patches, patches_fused], dim=2)  # (B, N, D1 + D2)


class FusedGELUMLPProjector(nn.Module):
    """`fused-gelu-mlp`: Linear(D, 4D) -> GELU -> Linear(4D, H) -> GELU -> Linear(H, H)."""

    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim, bias=True)
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim, bias=True)
        self.fc3 = nn.Linear(llm_dim, llm_dim, bias=True)
        self.act_fn1 = nn.GELU()
        self.act_fn2 = nn.GELU()

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.act_fn1(self.fc1(patches))  # (B, N, 4D)
        x = self.act_fn2(self.fc2(x))  # (B, N, H)
        return self.fc3(x)  # (B, N, H)


# --- language model ---------------------------------------------------------------------------
def _cache_kwarg(lm: nn.Module) -> str:
    """The KV-cache argument of this transformers version's forward: 'cache' (newer 5.x, where
    'past_key_values' is a deprecated alias) or 'past_key_values' (older releases)."""
    import inspect  # noqa: PLC0415

    return 'cache' if 'cache' in inspect.signature(lm.forward).parameters else 'past_key_values'


def make_text_config(text_config: dict[str, Any], attn_implementation: str) -> LlamaConfig:
    """`LlamaConfig` from the checkpoint's `text_config`, with the attention kernel chosen here."""
    kwargs = {k: v for k, v in text_config.items() if k not in ('model_type', 'architectures')}
    config = LlamaConfig(**kwargs)
    config._attn_implementation = attn_implementation
    return config


@dataclass
class MultimodalInputs:
    """Left-padded language-model inputs: BOS, 256 patch embeddings, the rest of the prompt.

    Attributes:
        inputs_embeds: (B, T, H) in the language model's dtype.
        attention_mask: (B, T) long, 0 on left padding; None when no row is padded.
        position_ids: (B, T) positions counting only real tokens.
    """

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor


class OpenVLAForActionPrediction(nn.Module):
    """The OpenVLA vision-language-action model (inference only).

    Args:
        config: the checkpoint configuration.
        attn_implementation: transformers attention kernel of the Llama model ('sdpa' or 'eager').
    """

    def __init__(
        self, config: OpenVLAConfig, *, attn_implementation: str = DEFAULT_ATTN_IMPLEMENTATION
    ) -> None:
        super().__init__()
        self.config = config
        self.vision_backbone = FusedVisionBackbone(config)
        self.projector = FusedGELUMLPProjector(self.vision_backbone.embed_dim, config.hidden_size)
        self.language_model = LlamaForCausalLM(
            make_text_config(config.text_config, attn_implementation)
        )

    # --- HF-style accessors (peft and tied-weight helpers use them) ----------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    @property
    def compute_dtype(self) -> torch.dtype:
        """dtype of activations (the patch embedding is never quantized)."""
        return self.vision_backbone.featurizer.patch_embed.proj.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.vision_backbone.featurizer.patch_embed.proj.weight.device

    # --- inputs ---------------------------------------------------------------------------------
    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 6, 224, 224) -> projected patch embeddings (B, 256, H)."""
        pixel_values = pixel_values.to(device=self.device, dtype=self.compute_dtype)
        return self.projector(self.vision_backbone(pixel_values))  # (B, N, H)

    def build_inputs(
        self, prompt_ids: Sequence[Sequence[int]], pixel_values: torch.Tensor
    ) -> MultimodalInputs:
        """Insert the patches right after BOS in every row and left-pad rows to the same length.

        Raises:
            ValueError: the number of prompts and images differ, or a prompt is empty.
        """
        if len(prompt_ids) != pixel_values.shape[0]:
            raise ValueError(f'{len(prompt_ids)} prompts but {pixel_values.shape[0]} images')
        if any(len(ids) == 0 for ids in prompt_ids):
            raise ValueError('empty prompt')
        return self.build_inputs_from_patches(prompt_ids, self.embed_images(pixel_values))

    def build_inputs_from_patches(
        self, prompt_ids: Sequence[Sequence[int]], patches: torch.Tensor
    ) -> MultimodalInputs:
        """`build_inputs` after the vision stage: `patches` (B, N, H) already projected.

        Rows of equal length (one instruction, the common case) are assembled in a few batched
        operations; ragged rows one by one with left padding.

        Raises:
            ValueError: the number of prompts and images differ, or a prompt is empty.
        """
        if len(prompt_ids) != patches.shape[0]:
            raise ValueError(f'{len(prompt_ids)} prompts but {patches.shape[0]} images')
        if any(len(ids) == 0 for ids in prompt_ids):
            raise ValueError('empty prompt')
        embed = self.get_input_embeddings()
        if len({len(ids) for ids in prompt_ids}) == 1:
            ids = torch.as_tensor([list(r) for r in prompt_ids], dtype=torch.long)
            text = embed(ids.to(self.device, non_blocking=True))  # (B, L, H)
            embeds = torch.cat([text[:, :1], patches.to(text.dtype), text[:, 1:]], dim=1)
            batch, length = embeds.shape[:2]
            positions = torch.arange(length, device=self.device).unsqueeze(0).expand(batch, -1)
            return MultimodalInputs(embeds, None, positions)  # (B, T, H)
        rows = []
        for row, ids in enumerate(prompt_ids):
            tokens = torch.as_tensor(list(ids), dtype=torch.long, device=self.device)  # (L,)
            text = embed(tokens)  # (L, H)
            rows.append(torch.cat([text[:1], patches[row].to(text.dtype), text[1:]], dim=0))
        length = max(r.shape[0] for r in rows)
        batch, hidden = len(rows), rows[0].shape[1]
        if all(r.shape[0] == length for r in rows):
            positions = torch.arange(length, device=self.device).unsqueeze(0).expand(batch, -1)
            return MultimodalInputs(torch.stack(rows), None, positions)  # (B, T, H)
        embeds = rows[0].new_zeros(batch, length, hidden)  # (B, T, H)
        mask = torch.zeros(batch, length, dtype=torch.long, device=self.device)  # (B, T)
        for row, values in enumerate(rows):
            embeds[row, length - values.shape[0] :] = values
            mask[row, length - values.shape[0] :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        return MultimodalInputs(embeds, mask, positions)

    def forward(
        self, prompt_ids: Sequence[Sequence[int]], pixel_values: torch.Tensor
    ) -> torch.Tensor:
        """Logits over the whole multimodal sequence, (B, T, V) (tests and golden checks)."""
        inputs = self.build_inputs(prompt_ids, pixel_values)
        out = self.language_model(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=inputs.attention_mask,
            position_ids=inputs.position_ids,
            use_cache=False,
        )
        return out.logits

    # --- decoding -------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate_action_tokens(
        self,
        prompt_ids: Sequence[Sequence[int]],
        pixel_values: torch.Tensor,
        n_tokens: int,
        decode: DecodeMode = 'fast',
    ) -> torch.Tensor:
        """Greedy-decode exactly `n_tokens` tokens per row, (B, n_tokens) long on the CPU.

        Args:
            prompt_ids: token ids per row (BOS first, 29871 last).
            pixel_values: (B, 6, 224, 224).
            n_tokens: tokens to generate (the action dimension).
            decode: 'fast' (own loop over a static KV cache), 'reference' (transformers
                `generate` with its default cache, the official path) or 'graph' (own Llama
                forward, CUDA graphs on a GPU).

        Raises:
            ValueError: unknown decode mode or `n_tokens` < 1.
        """
        if decode not in DECODE_MODES:
            raise ValueError(f'decode must be one of {DECODE_MODES}, got {decode!r}')
        if n_tokens < 1:
            raise ValueError(f'n_tokens must be >= 1, got {n_tokens}')
        if decode == 'graph':
            return self.graph_decoder().generate(prompt_ids, pixel_values, n_tokens)
        inputs = self.build_inputs(prompt_ids, pixel_values)
        if decode == 'fast':
            tokens = self._greedy_static_cache(inputs, n_tokens)
        else:
            tokens = self._greedy_generate(inputs, n_tokens)
        return tokens.cpu()

    def graph_decoder(self) -> Any:
        """The `GraphedDecoder` of this model (created on first use; holds its CUDA graphs)."""
        decoder = self.__dict__.get('_graph_decoder')
        if decoder is None or decoder.model is not self:
            from openvla_ros.model.decoding import GraphedDecoder  # noqa: PLC0415

            decoder = GraphedDecoder(self)
            self.__dict__['_graph_decoder'] = decoder
        return decoder

    def _greedy_static_cache(self, inputs: MultimodalInputs, n_tokens: int) -> torch.Tensor:
        """Prefill once, then `n_tokens - 1` single-token steps on a preallocated KV cache.

        Shapes stay fixed across steps (cache of length T + n_tokens, one token per step), so the
        step is ready for `torch.compile` / CUDA graphs.
        """
        lm = self.language_model
        batch, length, _ = inputs.inputs_embeds.shape
        cache = StaticCache(config=lm.config, max_cache_len=length + n_tokens)
        full_mask = None
        if inputs.attention_mask is not None:
            ones = inputs.attention_mask.new_ones(batch, n_tokens)
            full_mask = torch.cat([inputs.attention_mask, ones], dim=1)  # (B, T + n)
        out = lm(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=None if full_mask is None else full_mask[:, :length],
            position_ids=inputs.position_ids,
            **{_cache_kwarg(lm): cache},
            use_cache=True,
            logits_to_keep=1,
        )
        tokens = torch.empty(batch, n_tokens, dtype=torch.long, device=self.device)  # (B, n)
        token = out.logits[:, -1].float().argmax(dim=-1)  # (B,)
        tokens[:, 0] = token
        position = inputs.position_ids[:, -1:] + 1  # (B, 1)
        for step in range(1, n_tokens):
            out = lm(
                input_ids=token[:, None],
                attention_mask=None if full_mask is None else full_mask[:, : length + step],
                position_ids=position,
                **{_cache_kwarg(lm): cache},
                use_cache=True,
                logits_to_keep=1,
            )
            token = out.logits[:, -1].float().argmax(dim=-1)  # (B,)
            tokens[:, step] = token
            position = position + 1
        return tokens

    def _greedy_generate(self, inputs: MultimodalInputs, n_tokens: int) -> torch.Tensor:
        """transformers `generate` on `inputs_embeds` (greedy, default dynamic cache, no EOS)."""
        batch, length, _ = inputs.inputs_embeds.shape
        mask = inputs.attention_mask
        if mask is None:
            mask = torch.ones(batch, length, dtype=torch.long, device=self.device)
        config = GenerationConfig(
            max_new_tokens=n_tokens,
            do_sample=False,
            num_beams=1,
            bos_token_id=const.BOS_TOKEN_ID,
            pad_token_id=self.config.pad_token_id,
            eos_token_id=None,
        )
        out = self.language_model.generate(
            inputs_embeds=inputs.inputs_embeds, attention_mask=mask, generation_config=config
        )
        tokens = out[:, -n_tokens:] if out.shape[1] >= n_tokens else out
        if tokens.shape[1] != n_tokens:
            raise RuntimeError(f'generate returned {tokens.shape[1]} tokens, expected {n_tokens}')
        return tokens
