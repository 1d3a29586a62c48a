"""The int4 prefill's unpack of CUDA tinygemm-packed weights, checked against the packing kernel.

`emulate_cuda_pack` transcribes `_convert_weight_to_int4pack_cuda`; the torch-ops unpack and the
Triton kernel (run by Triton's interpreter on the CPU) must give back exactly the codes and the
dequantized weights. On a GPU every int4 layer re-checks its own packed weights at load.
"""

from __future__ import annotations

import pytest
import torch

from openvla_ros.model import int4_unpack
from openvla_ros.model.int4_unpack import emulate_cuda_pack, unpack_codes, unpack_dequantize
from openvla_ros.model.quantization import quantize_int4_groups

SHAPES = [(16, 64, 2, 32), (24, 128, 4, 64), (32, 512, 8, 128)]


def _packed(n: int, k: int, tiles: int, group: int, seed: int):
    torch.manual_seed(seed)
    codes, scale, zero = quantize_int4_groups(torch.randn(n, k), group)
    q_uint8 = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)
    packed = emulate_cuda_pack(q_uint8, tiles)
    scales_and_zeros = torch.stack([scale.t(), zero.t()], dim=-1).contiguous()
    return codes, scale, zero, packed, scales_and_zeros


@pytest.mark.parametrize(('n', 'k', 'tiles', 'group'), SHAPES)
def test_unpack_gives_back_the_packed_codes(n: int, k: int, tiles: int, group: int) -> None:
    codes, _, _, packed, _ = _packed(n, k, tiles, group, seed=n + k)
    assert packed.shape == (n // 8, k // (16 * tiles), 32, tiles // 2)
    assert torch.equal(unpack_codes(packed), codes)


@pytest.mark.skipif(not int4_unpack.triton_available(), reason='Triton is not installed')
@pytest.mark.parametrize(('n', 'k', 'tiles', 'group'), SHAPES)
def test_triton_unpack_dequantizes_exactly(monkeypatch, n: int, k: int, tiles: int,
                                           group: int) -> None:
    monkeypatch.setenv('TRITON_INTERPRET', '1')  # Triton's CPU interpreter runs the kernel here
    int4_unpack._kernel.cache_clear()
    try:
        codes, scale, zero, packed, scales_and_zeros = _packed(n, k, tiles, group, seed=k)
        weights = unpack_dequantize(packed, scales_and_zeros, group)
    finally:
        int4_unpack._kernel.cache_clear()
    expected = ((codes.float() - 8).reshape(n, -1, group) * scale[..., None]
                + zero[..., None]).reshape(n, k)
    torch.testing.assert_close(weights, expected, rtol=0, atol=1e-6)
