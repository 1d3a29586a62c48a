"""Random-weight OpenVLA policies built in memory, for benchmarks that need no download.

``random_policy('7b', device='cuda')`` has the released model's exact architecture and sizes
(DINOv2-L + SigLIP-SO400M, the fused projector, Llama-2-7B, 32064-token vocabulary) with random
weights, created directly on the device; ``'tiny'`` has the tiny test model's sizes. Both go
through the same policy, processor, decoding and quantization code as a loaded checkpoint, so
their timings are the real code path's. Their actions mean nothing.
"""

from __future__ import annotations

import math

import torch

from openvla_ros.model import constants as const
from openvla_ros.model.configuration import OpenVLAConfig
from openvla_ros.model.loading import (
    BNB_MODES,
    load_tokenizer,
    parse_dtype,
    quantize_linear_layers,
    resolve_precision,
)
from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.policy import OpenVLAPolicy
from openvla_ros.model.processor import ImageTransformConfig, OpenVLAProcessor
from openvla_ros.model.quantization import quantize_weight_only, WEIGHT_ONLY_MODES
from openvla_ros.model.tiny import load_sample_norm_stats, tiny_config

__all__ = ['RANDOM_SIZES', 'random_config', 'random_policy']

RANDOM_SIZES = ('tiny', '7b')


def random_config(size: str) -> OpenVLAConfig:
    """The configuration of a random model: the released 7B architecture, or the tiny one.

    Raises:
        ValueError: an unknown size.
    """
    if size == '7b':
        return OpenVLAConfig(text_config=dict(const.LLAMA2_7B_TEXT_CONFIG),
                             norm_stats=load_sample_norm_stats())
    if size == 'tiny':
        return tiny_config()
    raise ValueError(f'unknown random model size {size!r}; one of {list(RANDOM_SIZES)}')


@torch.no_grad()
def _fill(model: torch.nn.Module, seed: int) -> None:
    """Deterministic random weights: N(0, 1/fan_in) matrices, unit norms, small LayerScales."""
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for name, param in model.named_parameters():
        if name.endswith('scale_factor'):
            param.fill_(0.1)
        elif 'norm' in name and name.endswith('.weight'):
            param.fill_(1.0)
        elif param.dim() >= 2:
            param.normal_(0.0, 1.0 / math.sqrt(param[0].numel()), generator=generator)
        else:
            param.zero_()


def random_policy(size: str = '7b', *, device: str = 'cuda', dtype: str = 'bfloat16',
                  quantize: str = 'none', seed: int = 0, decode: str = 'fast') -> OpenVLAPolicy:
    """An ``OpenVLAPolicy`` with random weights, built without reading any checkpoint.

    Without quantization, and with ``int8``/``int4`` (quantized in place there), the weights are
    created on ``device`` directly; with ``8bit``/``4bit`` (bitsandbytes) they are created on the
    CPU in ``dtype`` and quantized onto ``device`` (what loading does). The same seed gives the
    same weights, so policies built one after another can be compared.

    Raises:
        ValueError: unknown size, dtype or device (CUDA asked for but absent).
    """
    from accelerate import init_empty_weights  # noqa: PLC0415

    config = random_config(size)
    device, dtype, quantize = resolve_precision(device, dtype, quantize)
    torch_dtype = parse_dtype(dtype)
    target = torch.device(device)
    if target.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not available')
    build_on = torch.device('cpu') if quantize in BNB_MODES else target
    with init_empty_weights(include_buffers=False):
        model = OpenVLAForActionPrediction(config)
    # Buffers made under init_empty_weights are real (rotary frequencies, ...), but `to_empty`
    # would replace them by uninitialized memory too: keep them and put them back.
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    model = model.to_empty(device=build_on)
    with torch.no_grad():
        for name, value in buffers.items():
            model.get_buffer(name).copy_(value)
    model = model.to(torch_dtype)
    _fill(model, seed)
    if quantize in BNB_MODES:
        quantize_linear_layers(model, quantize, compute_dtype=torch_dtype, device=target)
        model = model.to(target)
    elif quantize in WEIGHT_ONLY_MODES:
        quantize_weight_only(model, quantize)
    processor = OpenVLAProcessor(load_tokenizer(const.TOKENIZER_DIR), ImageTransformConfig())
    return OpenVLAPolicy(model.eval(), config, processor, model_name=f'random-{size}',
                         decode=decode)
