"""Weight-only int8 and int4 linear layers on core PyTorch kernels (no bitsandbytes, no torchao).

Why these kernels: one decode step of OpenVLA reads every language-model weight once for a single
token, so at batch 1 the step is bound by memory bandwidth and the win comes from reading fewer
bytes per weight. PyTorch itself ships the kernels:

- int4: `aten._weight_int4pack_mm` on CUDA (the "tinygemm" tensor-core kernel of gpt-fast; torchao
  0.18's `Int4WeightOnlyConfig(int4_packing_format='tile_packed_to_4d')` calls this very op, so a
  torchao wheel would add a dependency but no speed) and `aten._weight_int4pack_mm_for_cpu` on the
  CPU. Asymmetric, grouped along the input dimension (group 128 by default): per group a bf16
  scale and zero with `w = (q - 8) * scale + zero`, `q` in 0..15.
- int8: symmetric, one scale per output row. `aten._weight_int8pack_mm` on the CPU; on CUDA the
  layer dequantizes and calls the dense matmul (`int8_kernel()` says which runs and why): int8
  halves the weights' memory but, without a fused CUDA kernel, is not faster than bf16.
- int4 with many rows (a prefill) on CUDA: tinygemm is slow there, so the layer unpacks its
  weight to bf16 with one Triton kernel (`int4_unpack`) and calls the dense matmul.

Which layers: only the Llama decoder's projections (`language_model.model.layers.*`: q, k, v, o,
gate, up, down; 6.48 of the 7.54 billion parameters). The vision backbones and the projector stay
in the compute dtype: they run once per action on 256 patch tokens, where the matmuls are
compute-bound and a weight-only kernel saves no time (tinygemm is slower than cuBLAS at 256 rows),
and their 1.6 GB fit the 8 GB budget anyway. The embeddings and the LM head stay exact, so the
256 action-token logits are computed in the compute dtype and the agreement with bf16 is measured,
not assumed.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

import torch
from torch import nn
import torch.nn.functional as nnf

from openvla_ros.model.int4_unpack import triton_available, unpack_codes, unpack_dequantize

logger = logging.getLogger(__name__)

WeightOnlyMode = Literal['int8', 'int4']
WEIGHT_ONLY_MODES: tuple[str, ...] = ('int8', 'int4')
#: Module names (prefixes) that weight-only quantization touches: the Llama decoder layers.
WEIGHT_ONLY_SCOPE = 'language_model.model.layers.'
DEFAULT_GROUP_SIZE = 128
_INT4_GROUP_SIZES = (256, 128, 64, 32)

__all__ = [
    'DEFAULT_GROUP_SIZE',
    'Int4WeightOnlyLinear',
    'Int8WeightOnlyLinear',
    'WEIGHT_ONLY_MODES',
    'int8_kernel',
    'quantize_weight_only',
]


# --- int8 -------------------------------------------------------------------------------------
_INT8_CUDA_KERNEL: bool | None = None


def int8_kernel(device: torch.device) -> str:
    """Which int8 matmul runs on `device`: 'int8pack_mm' or 'dequantize'.

    On CUDA the layer dequantizes to the compute dtype and calls the dense matmul unless
    `OPENVLA_INT8_KERNEL=int8pack_mm`: torch 2.11's CUDA `_weight_int8pack_mm` ran 4.6x slower
    than bf16 at one row and 530x slower at 280 rows on an H200 (`scripts/gpu_bench.sh`,
    2026-11-30), far slower than dequantize-then-matmul.
    """
    global _INT8_CUDA_KERNEL
    if device.type != 'cuda':
        return 'int8pack_mm'
    if os.environ.get('OPENVLA_INT8_KERNEL', 'dequantize') != 'int8pack_mm':
        return 'dequantize'
    if _INT8_CUDA_KERNEL is None:
        try:
            x = torch.ones(1, 256, device=device, dtype=torch.bfloat16)
            w = torch.ones(64, 256, device=device, dtype=torch.int8)
            s = torch.ones(64, device=device, dtype=torch.bfloat16)
            expected = torch.full_like(x[:, :64], 256)
            if not torch.equal(torch._weight_int8pack_mm(x, w, s), expected):
                raise RuntimeError('_weight_int8pack_mm gave a wrong result')
            _INT8_CUDA_KERNEL = True
        except (RuntimeError, NotImplementedError) as exc:
            logger.warning('no int8 weight-only CUDA kernel in torch %s (%s): int8 layers '
                           'dequantize before the matmul', torch.__version__,
                           str(exc).splitlines()[0])
            _INT8_CUDA_KERNEL = False
    return 'int8pack_mm' if _INT8_CUDA_KERNEL else 'dequantize'


class Int8WeightOnlyLinear(nn.Module):
    """`y = x W^T + b` with `W` stored as int8 and one scale per output row (symmetric)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach()
        dtype = weight.dtype
        w = weight.float()
        scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0  # (N,)
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)  # (N, K)
        self.register_buffer('weight_int8', q.contiguous())
        self.register_buffer('scale', scale.to(dtype))
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer('bias', bias)
        self._kernel = int8_kernel(weight.device)

    def dequantized_weight(self) -> torch.Tensor:
        """(N, K) in the scale dtype (tests and the fallback kernel)."""
        return self.weight_int8.to(self.scale.dtype) * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).to(self.scale.dtype)
        if self._kernel == 'int8pack_mm':
            y = torch._weight_int8pack_mm(x2.contiguous(), self.weight_int8, self.scale)
        else:
            y = nnf.linear(x2, self.weight_int8.to(x2.dtype)) * self.scale
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f'in={self.in_features}, out={self.out_features}, kernel={self._kernel}'


# --- int4 -------------------------------------------------------------------------------------
def int4_layout(in_features: int, group_size: int = DEFAULT_GROUP_SIZE,
                out_features: int = 16) -> tuple[int, int] | None:
    """(group size, inner k tiles) the int4 kernels accept for this shape, or None.

    The kernels need groups of 32..256 that divide K, K a multiple of 16 * inner_k_tiles, and N a
    multiple of 16 (the CPU packing; CUDA needs 8).
    """
    if out_features % 16:
        return None
    for g in (group_size, *_INT4_GROUP_SIZES):
        if g in _INT4_GROUP_SIZES and g <= group_size and in_features % g == 0:
            for tiles in (8, 4, 2):
                if in_features % (16 * tiles) == 0:
                    return g, tiles
    return None


def quantize_int4_groups(
    weight: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric per-group int4 (tinygemm convention).

    Returns:
        q: (N, K) int32 in 0..15; scale, zero: (N, K / group_size) float32 with
        `w ~ (q - 8) * scale + zero`.
    """
    n, k = weight.shape
    w = weight.float().reshape(n, k // group_size, group_size)
    w_max = w.amax(dim=-1, keepdim=True)
    w_min = w.amin(dim=-1, keepdim=True)
    scale = (w_max - w_min).clamp(min=1e-6) / 15.0
    zero = w_min + 8.0 * scale
    q = torch.round((w - w_min) / scale).clamp(0, 15).to(torch.int32).reshape(n, k)
    return q, scale.reshape(n, -1), zero.reshape(n, -1)


#: Rows up to which tinygemm runs; more rows (a prefill) unpack to bf16 and use the dense matmul.
TINYGEMM_MAX_ROWS = 16
_UNPACK_STATE: dict[str, object] = {}


def _unpack_usable(packed: torch.Tensor, codes: torch.Tensor) -> bool:
    """Whether the Triton unpack reproduces this layer's codes (logged once when not)."""
    if _UNPACK_STATE.get('disabled'):
        return False
    reason = ''
    if not triton_available():
        reason = 'Triton is not importable'
    else:
        try:
            if not torch.equal(unpack_codes(packed), codes.to(packed.device)):
                reason = 'the packed layout differs from the one unpack_codes reads'
            elif 'kernel_checked' not in _UNPACK_STATE:
                sz = torch.rand(codes.shape[1] // 32, codes.shape[0], 2, device=packed.device,
                                dtype=torch.bfloat16)
                got = unpack_dequantize(packed, sz, 32)
                want = ((codes.float() - 8).reshape(codes.shape[0], -1, 32)
                        * sz[..., 0].t().float()[..., None]
                        + sz[..., 1].t().float()[..., None]).reshape(codes.shape)
                if not torch.allclose(got.float(), want, rtol=1e-2, atol=1e-2):
                    reason = 'the Triton unpack kernel gave wrong weights'
                _UNPACK_STATE['kernel_checked'] = True
        except Exception as exc:  # noqa: BLE001 - any failure: keep tinygemm for every row count
            reason = f'{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ""}'
    if reason:
        _UNPACK_STATE['disabled'] = True
        logger.warning('int4 prefill keeps tinygemm (slow for many rows): %s', reason)
        return False
    return True


def int4_prefill_path() -> str:
    """'unpack+matmul' or 'tinygemm': how CUDA int4 layers run more than 16 rows."""
    return 'tinygemm' if _UNPACK_STATE.get('disabled') else 'unpack+matmul'


class Int4WeightOnlyLinear(nn.Module):
    """`y = x W^T + b` with `W` as grouped int4, packed for the device's int4 matmul kernel.

    The packed layout depends on the device (tensor-core tiles on CUDA, a plain layout on the
    CPU), so the layer is built on the device it runs on and is not moved afterwards.
    On CUDA the kernel takes bf16 activations; other dtypes are cast around it.
    """

    def __init__(self, linear: nn.Linear, group_size: int = DEFAULT_GROUP_SIZE) -> None:
        super().__init__()
        layout = int4_layout(linear.in_features, group_size, linear.out_features)
        if layout is None:
            raise ValueError(f'{linear.out_features}x{linear.in_features} fits no int4 group '
                             'layout')
        self.group_size, self.inner_k_tiles = layout
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach()
        self.device_type = weight.device.type
        self.out_dtype = weight.dtype
        # tinygemm on CUDA computes in bf16; the CPU kernel takes the activation dtype.
        self.kernel_dtype = torch.bfloat16 if self.device_type == 'cuda' else weight.dtype
        q, scale, zero = quantize_int4_groups(weight, self.group_size)
        if self.device_type == 'cuda':
            q_uint8 = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)  # (N, K / 2)
            packed = torch._convert_weight_to_int4pack(q_uint8.contiguous(), self.inner_k_tiles)
        else:
            packed = torch._convert_weight_to_int4pack_for_cpu(q.contiguous(), self.inner_k_tiles)
        # (K / group, N, 2): scale and zero of each group, as the kernels read them.
        scales_and_zeros = torch.stack([scale.t(), zero.t()], dim=-1).to(self.kernel_dtype)
        self.register_buffer('weight_int4', packed)
        self.register_buffer('scales_and_zeros', scales_and_zeros.contiguous())
        #: prefill through the bf16 unpack (checked per layer: the unpacked codes must be ours)
        self.unpack_ok = self.device_type == 'cuda' and _unpack_usable(packed, q)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer('bias', bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).to(self.kernel_dtype).contiguous()
        if self.device_type == 'cuda' and x2.shape[0] > TINYGEMM_MAX_ROWS and self.unpack_ok:
            weight = unpack_dequantize(self.weight_int4, self.scales_and_zeros, self.group_size)
            y = nnf.linear(x2, weight)
        elif self.device_type == 'cuda':
            y = torch._weight_int4pack_mm(
                x2, self.weight_int4, self.group_size, self.scales_and_zeros
            )
        else:
            y = torch._weight_int4pack_mm_for_cpu(
                x2, self.weight_int4, self.group_size, self.scales_and_zeros
            )
        y = y.to(self.out_dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - nn.Module's signature
        # The packed layout is device specific: refuse a move, allow no-op applies (dtype casts
        # of the whole model leave integer buffers alone anyway).
        probe = fn(torch.empty(0, device=self.weight_int4.device))
        if probe.device != self.weight_int4.device:
            raise RuntimeError(
                'an int4 layer is packed for its device; quantize on the target device instead '
                f'of moving it ({self.weight_int4.device} -> {probe.device})'
            )
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return (f'in={self.in_features}, out={self.out_features}, group={self.group_size}, '
                f'kernel={"_weight_int4pack_mm" if self.device_type == "cuda" else "cpu"}')


# --- model ------------------------------------------------------------------------------------
@torch.no_grad()
def quantize_weight_only(
    model: nn.Module,
    mode: str,
    *,
    group_size: int = DEFAULT_GROUP_SIZE,
    scope: str = WEIGHT_ONLY_SCOPE,
    device: torch.device | str | None = None,
) -> int:
    """Replace the `nn.Linear` layers under `scope` by int8 or int4 weight-only layers, in place.

    The int4 packing is device specific: each layer is moved to `device` (default: where it is)
    and quantized there, and its float weight is freed at once, so a 7B model quantizes onto a
    small GPU from the CPU with one float layer at a time on the device.

    Returns:
        the number of layers replaced.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in WEIGHT_ONLY_MODES:
        raise ValueError(f'weight-only mode must be one of {WEIGHT_ONLY_MODES}, got {mode!r}')
    replaced = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or not name.startswith(scope):
            continue
        if mode == 'int4' and int4_layout(module.in_features, group_size,
                                          module.out_features) is None:
            logger.warning('int4: keeping %s (%dx%d) unquantized', name, module.out_features,
                           module.in_features)
            continue
        if device is not None:
            module.to(device)
        new: nn.Module = (
            Int4WeightOnlyLinear(module, group_size) if mode == 'int4'
            else Int8WeightOnlyLinear(module)
        )
        parent_name, _, child = name.rpartition('.')
        setattr(model.get_submodule(parent_name), child, new)
        module.weight = None  # free the float weight now
        replaced += 1
    return replaced
