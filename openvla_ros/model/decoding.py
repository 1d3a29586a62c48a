"""Greedy action decoding that pays no Python per token on a GPU: `decode='graph'`.

Two pieces:

- `llm_greedy`: the Llama-2 forward written out over the model's own modules (norms, projections,
  MLPs, rotary frequencies), with our own KV cache tensors: prefill, then `n - 1` one-token steps.
  It computes what transformers' `LlamaForCausalLM` + `generate` compute (same ops, same SDPA
  calls: causal prefill without a mask, one-token steps over exactly the filled cache), but every
  shape is known before it runs and nothing reads a value back to the host. It runs anywhere;
  quantized linear layers plug in unchanged.
- `GraphedDecoder`: on CUDA, captures (1) the vision backbone + projector per batch size and (2)
  the whole prefill + decode loop per (batch, prompt length) in CUDA graphs, and replays them: one
  launch per stage instead of thousands of kernel launches from Python. Capturing costs one eager
  run plus the capture (well under a second for the 7B model, no compiler), done at load by
  `OpenVLAPolicy.warmup` for the expected shapes. A new prompt length captures once more. On the
  CPU, or if a capture fails (logged once), the same functions run eagerly.

Manual graphs instead of `torch.compile(mode='reduce-overhead')`: no compile time at load (minutes
for a 7B model, again per shape and per quantization), no recompiles when the prompt length
changes, and no dependence on how transformers' cache and mask code traces.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
import logging
import time
from typing import Any

import torch
from torch import nn
import torch.nn.functional as nnf

logger = logging.getLogger(__name__)

__all__ = ['GraphedDecoder', 'llm_greedy']


def _rope(position_ids: torch.Tensor, rotary: nn.Module, dtype: torch.dtype):
    """cos, sin (B, T, D) exactly as transformers' `LlamaRotaryEmbedding` computes them."""
    inv_freq = rotary.inv_freq.to(device=position_ids.device, dtype=torch.float32)
    freqs = position_ids[..., None].float() * inv_freq  # (B, T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, D)
    scaling = float(getattr(rotary, 'attention_scaling', 1.0))
    return (emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D); cos/sin (B, T, D)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + _rotate_half(x) * sin


def _layer(
    layer: nn.Module,
    hidden: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    start: int,
    mask: torch.Tensor | None,
    causal: bool,
) -> torch.Tensor:
    """One decoder layer on `hidden` (B, T, H) at cache positions [start, start + T)."""
    attn = layer.self_attn
    batch, length, _ = hidden.shape
    heads_q = attn.q_proj.out_features // attn.head_dim
    heads_kv = attn.k_proj.out_features // attn.head_dim
    residual = hidden
    x = layer.input_layernorm(hidden)
    q = attn.q_proj(x).view(batch, length, heads_q, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x).view(batch, length, heads_kv, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(batch, length, heads_kv, attn.head_dim).transpose(1, 2)
    q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
    end = start + length
    k_cache[:, :, start:end].copy_(k)
    v_cache[:, :, start:end].copy_(v)
    if start == 0:  # prefill: attend over this step's keys (what the reference does)
        keys, values = k, v
    else:  # one-token step: exactly the filled part of the cache
        keys, values = k_cache[:, :, :end], v_cache[:, :, :end]
    out = nnf.scaled_dot_product_attention(
        q, keys, values, attn_mask=mask, is_causal=causal and mask is None,
        scale=attn.scaling, enable_gqa=heads_q != heads_kv,
    )  # (B, Hq, T, D)
    out = out.transpose(1, 2).reshape(batch, length, heads_q * attn.head_dim)
    hidden = residual + attn.o_proj(out)
    return hidden + layer.mlp(layer.post_attention_layernorm(hidden))


def new_kv_cache(lm: nn.Module, batch: int, length: int, dtype: torch.dtype,
                 device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Zeroed (B, H_kv, length, D) key and value tensors per layer."""
    cfg = lm.config
    head_dim = getattr(cfg, 'head_dim', None) or cfg.hidden_size // cfg.num_attention_heads
    shape = (batch, cfg.num_key_value_heads, length, head_dim)
    return [
        (torch.zeros(shape, dtype=dtype, device=device),
         torch.zeros(shape, dtype=dtype, device=device))
        for _ in range(cfg.num_hidden_layers)
    ]


def llm_greedy(
    lm: nn.Module,
    inputs_embeds: torch.Tensor,
    position_ids: torch.Tensor,
    pad_mask: torch.Tensor | None,
    n_tokens: int,
    cache: list[tuple[torch.Tensor, torch.Tensor]],
    out: torch.Tensor | None = None,
    logits_out: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Greedy-decode `n_tokens` tokens per row, (B, n) long on the input's device.

    Args:
        lm: the `LlamaForCausalLM` (its modules may be quantized).
        inputs_embeds: (B, T, H) left-padded multimodal embeddings.
        position_ids: (B, T) positions counting only real tokens.
        pad_mask: (B, T) bool, False on left padding; None when no row is padded.
        n_tokens: tokens to generate.
        cache: `new_kv_cache(lm, B, >= T + n_tokens - 1, ...)`.
        out: optional (B, n) long tensor to write into (CUDA graphs keep a static one).
        logits_out: when given, each step's (B, V) float32 logits are appended (tests, benches).
    """
    model = lm.model
    batch, length, _ = inputs_embeds.shape
    dtype = inputs_embeds.dtype
    device = inputs_embeds.device
    tokens = out if out is not None else torch.empty(batch, n_tokens, dtype=torch.long,
                                                     device=device)
    key_valid = None
    prefill_mask = None
    if pad_mask is not None:
        ones = torch.ones(batch, n_tokens, dtype=torch.bool, device=device)
        key_valid = torch.cat([pad_mask, ones], dim=1)  # (B, T + n)
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=device)
        # padded queries see themselves, so no row is fully masked (NaN-free); real queries
        # never see padding.
        prefill_mask = (causal & pad_mask[:, None, :]) | eye  # (B, T, T)
        prefill_mask = prefill_mask[:, None]  # (B, 1, T, T)
    cos, sin = _rope(position_ids, model.rotary_emb, dtype)
    hidden = inputs_embeds
    for layer, (k_cache, v_cache) in zip(model.layers, cache):
        hidden = _layer(layer, hidden, cos, sin, k_cache, v_cache, 0, prefill_mask, True)
    logits = lm.lm_head(model.norm(hidden[:, -1:]))  # (B, 1, V)
    if logits_out is not None:
        logits_out.append(logits[:, -1].float())
    token = logits[:, -1].float().argmax(dim=-1)  # (B,)
    tokens[:, 0] = token
    position = position_ids[:, -1:]  # (B, 1)
    embed = model.embed_tokens
    for step in range(1, n_tokens):
        position = position + 1
        start = length + step - 1
        mask = None if key_valid is None else key_valid[:, None, None, : start + 1]
        cos, sin = _rope(position, model.rotary_emb, dtype)
        hidden = embed(token[:, None])  # (B, 1, H)
        for layer, (k_cache, v_cache) in zip(model.layers, cache):
            hidden = _layer(layer, hidden, cos, sin, k_cache, v_cache, start, mask, False)
        logits = lm.lm_head(model.norm(hidden))  # (B, 1, V)
        if logits_out is not None:
            logits_out.append(logits[:, -1].float())
        token = logits[:, -1].float().argmax(dim=-1)
        tokens[:, step] = token
    return tokens


@dataclass
class _LLMGraph:
    graph: Any  # torch.cuda.CUDAGraph, or None when running eagerly
    embeds: torch.Tensor
    positions: torch.Tensor
    pad_mask: torch.Tensor | None
    cache: list[tuple[torch.Tensor, torch.Tensor]]
    tokens: torch.Tensor


@dataclass
class _VisionGraph:
    graph: Any
    pixels: torch.Tensor
    patches: torch.Tensor


class GraphedDecoder:
    """CUDA-graph replays of the vision stage and of prefill + decode, keyed by shape.

    Args:
        model: an `OpenVLAForActionPrediction` on its device (possibly quantized).
        max_graphs: language-model graphs kept (least recently used ones are dropped); each
            holds its own KV cache.
    """

    def __init__(self, model: nn.Module, max_graphs: int = 8) -> None:
        self.model = model
        self.max_graphs = max_graphs
        self.use_graphs = model.device.type == 'cuda'
        self._llm: OrderedDict[tuple, _LLMGraph] = OrderedDict()
        self._vision: dict[int, _VisionGraph] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        self.captures = 0
        self.capture_s = 0.0
        self.failures: list[str] = []

    # --- capture ------------------------------------------------------------------------------
    def _capture(self, fn, what: str):
        """Warm `fn` up on a side stream, then capture it; None (and a log line) on failure."""
        start = time.perf_counter()
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                fn()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                fn()
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001 - any capture failure means: run eagerly
            torch.cuda.synchronize()
            first = str(exc).splitlines()[0] if str(exc) else ''
            message = f'{what}: {type(exc).__name__}: {first}'
            if message not in self.failures:
                self.failures.append(message)
                logger.warning('CUDA graph capture failed, running eagerly (%s)', message)
            return None
        self.captures += 1
        self.capture_s += time.perf_counter() - start
        return graph

    def _vision_entry(self, batch: int, pixels: torch.Tensor) -> _VisionGraph:
        entry = self._vision.get(batch)
        if entry is None:
            static = pixels.detach().clone()
            holder: dict[str, torch.Tensor] = {}

            def run() -> None:
                holder['patches'] = self.model.embed_images(static)

            graph = self._capture(run, f'vision batch {batch}') if self.use_graphs else None
            if graph is None:
                run()
            entry = _VisionGraph(graph, static, holder['patches'])
            self._vision[batch] = entry
        return entry

    def _llm_entry(self, key: tuple, embeds: torch.Tensor, positions: torch.Tensor,
                   pad_mask: torch.Tensor | None, n_tokens: int) -> _LLMGraph:
        entry = self._llm.get(key)
        if entry is not None:
            self._llm.move_to_end(key)
            return entry
        while len(self._llm) >= self.max_graphs:
            self._llm.popitem(last=False)
        batch, length, _ = embeds.shape
        lm = self.model.language_model
        cache = new_kv_cache(lm, batch, length + n_tokens, embeds.dtype, embeds.device)
        static_embeds = embeds.detach().clone()
        static_positions = positions.detach().clone()
        static_mask = None if pad_mask is None else pad_mask.detach().clone()
        tokens = torch.zeros(batch, n_tokens, dtype=torch.long, device=embeds.device)

        def run() -> None:
            llm_greedy(lm, static_embeds, static_positions, static_mask, n_tokens, cache,
                       out=tokens)

        graph = self._capture(run, f'prefill+decode {key}') if self.use_graphs else None
        entry = _LLMGraph(graph, static_embeds, static_positions, static_mask, cache, tokens)
        self._llm[key] = entry
        return entry

    # --- run ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self, prompt_ids: Sequence[Sequence[int]], pixel_values: torch.Tensor, n_tokens: int
    ) -> torch.Tensor:
        """(B, n_tokens) greedy tokens on the CPU, like `generate_action_tokens`."""
        model = self.model
        pixels = pixel_values.to(device=model.device, dtype=model.compute_dtype)
        batch = pixels.shape[0]
        if self.use_graphs:
            vision = self._vision_entry(batch, pixels)
            if vision.graph is not None:
                vision.pixels.copy_(pixels)
                vision.graph.replay()
                patches = vision.patches
            else:
                patches = model.embed_images(pixels)
        else:
            patches = model.embed_images(pixels)
        inputs = model.build_inputs_from_patches(prompt_ids, patches)
        embeds, positions = inputs.inputs_embeds, inputs.position_ids
        pad_mask = None if inputs.attention_mask is None else inputs.attention_mask.bool()
        if not self.use_graphs:
            lm = model.language_model
            cache = new_kv_cache(lm, batch, embeds.shape[1] + n_tokens, embeds.dtype,
                                 embeds.device)
            return llm_greedy(lm, embeds, positions, pad_mask, n_tokens, cache).cpu()
        key = (batch, embeds.shape[1], n_tokens, pad_mask is not None)
        entry = self._llm_entry(key, embeds, positions, pad_mask, n_tokens)
        entry.embeds.copy_(embeds)
        entry.positions.copy_(positions)
        if entry.pad_mask is not None and pad_mask is not None:
            entry.pad_mask.copy_(pad_mask)
        if entry.graph is not None:
            entry.graph.replay()
        else:
            llm_greedy(model.language_model, entry.embeds, entry.positions, entry.pad_mask,
                       n_tokens, entry.cache, out=entry.tokens)
        return entry.tokens.cpu()

    @torch.inference_mode()
    def logits(
        self, prompt_ids: Sequence[Sequence[int]], pixel_values: torch.Tensor, n_tokens: int
    ) -> torch.Tensor:
        """(n_tokens, B, V) float32 logits of each greedy step, computed eagerly (checks)."""
        model = self.model
        inputs = model.build_inputs(prompt_ids, pixel_values)
        pad_mask = None if inputs.attention_mask is None else inputs.attention_mask.bool()
        batch, length = inputs.inputs_embeds.shape[:2]
        lm = model.language_model
        cache = new_kv_cache(lm, batch, length + n_tokens, inputs.inputs_embeds.dtype,
                             inputs.inputs_embeds.device)
        steps: list[torch.Tensor] = []
        llm_greedy(lm, inputs.inputs_embeds, inputs.position_ids, pad_mask, n_tokens, cache,
                   logits_out=steps)
        return torch.stack(steps).cpu()

    def stats(self) -> dict[str, Any]:
        """Graphs captured, seconds spent capturing, capture failures (for logs and benches)."""
        return {
            'graphs': self.use_graphs,
            'captures': self.captures,
            'capture_s': round(self.capture_s, 3),
            'llm_graphs_cached': len(self._llm),
            'vision_graphs_cached': len(self._vision),
            'failures': list(self.failures),
        }
