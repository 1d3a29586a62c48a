"""Dequantize CUDA tinygemm-packed int4 weights to bf16 in one pass (the int4 path's prefill).

Why: `aten._weight_int4pack_mm` (tinygemm) is fast for a few rows (a decode step) but re-reads
and re-dequantizes the weights for every 16 rows; for the ~280-token prefill it ran 17x slower
than a bf16 matmul on an H200 (0.89 ms vs 0.052 ms for one 11008x4096 layer, `scripts/
gpu_bench.sh`, 2026-11-30). For many rows the int4 layer therefore unpacks its weight into a
temporary bf16 matrix with this Triton kernel (reads 0.5 byte, writes 2 bytes per weight) and
calls the bf16 matmul.

The layout, read from `_convert_weight_to_int4pack_cuda` (`matrix_to_m16n8k16_Bint4_layout`,
NVIDIA branch): the packed tensor is int32 `[N / 8][K / (16 * T)][32][T / 2]` (T = inner k
tiles). Word `[nt][ko][t][j]` holds 8 nibbles; nibble `i = 4 * h + c` (bits 4i..4i+3) is the code
of row `n = 8 * nt + t // 4` and column `k = 16 * T * ko + 32 * j + 8 * c + 2 * (t % 4) + h`.
`emulate_cuda_pack` re-implements the packing kernel on the CPU, so the index math is tested
here; on the GPU, `Int4WeightOnlyLinear` checks the unpacked codes of every layer against the
codes it packed, and falls back to tinygemm for the prefill if they ever differ.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

__all__ = ['emulate_cuda_pack', 'triton_available', 'unpack_codes', 'unpack_dequantize']


def emulate_cuda_pack(q_uint8: torch.Tensor, inner_k_tiles: int) -> torch.Tensor:
    """CPU re-implementation of `_convert_weight_to_int4pack` (CUDA) for tests.

    Args:
        q_uint8: (N, K / 2) uint8, the even column in the high nibble, the odd one in the low.
        inner_k_tiles: 2, 4 or 8.
    """
    n, half_k = q_uint8.shape
    k = 2 * half_k
    tiles = inner_k_tiles
    out = torch.zeros(n // 8, k // (16 * tiles), 32, tiles // 2, dtype=torch.int32)
    v_in = q_uint8.to(torch.int64)
    for n_tile in range(n // 8):
        for k_outer in range(k // (16 * tiles)):
            for t in range(32):
                n0 = n_tile * 8 + t // 4
                for inner in range(0, tiles, 2):
                    base0 = (k_outer * tiles + inner) * 16 // 2
                    base1 = base0 + 8
                    ks = [base0 + t % 4, base0 + t % 4 + 4, base1 + t % 4, base1 + t % 4 + 4]
                    v = [int(v_in[n0, kk]) for kk in ks]
                    pack = ((v[3] & 0xF) << 28) | ((v[2] & 0xF) << 24) | ((v[1] & 0xF) << 20) \
                        | ((v[0] & 0xF) << 16) | ((v[3] & 0xF0) << 8) | ((v[2] & 0xF0) << 4) \
                        | (v[1] & 0xF0) | ((v[0] & 0xF0) >> 4)
                    if pack >= 2**31:
                        pack -= 2**32
                    out[n_tile, k_outer, t, inner // 2] = pack
    return out


def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """(N, K) int32 codes 0..15 from a tinygemm-packed tensor (torch ops; checks and tests)."""
    n_tiles, k_outer, lanes, half_tiles = packed.shape
    shifts = torch.arange(8, device=packed.device, dtype=torch.int32) * 4  # nibble i = 4h + c
    nibbles = (packed.unsqueeze(-1) >> shifts) & 0xF  # (nt, ko, t, j, i)
    nibbles = nibbles.view(n_tiles, k_outer, 8, 4, half_tiles, 2, 4)  # (nt, ko, a, b, j, h, c)
    # n = (nt, a); k = (ko, j, c, b, h)
    codes = nibbles.permute(0, 2, 1, 4, 6, 3, 5)
    return codes.reshape(n_tiles * 8, k_outer * half_tiles * 2 * 16)


@functools.cache
def triton_available() -> bool:
    """Whether Triton imports (it ships with CUDA builds of PyTorch)."""
    try:
        import triton  # noqa: F401, PLC0415
        import triton.language  # noqa: F401, PLC0415
    except Exception:  # noqa: BLE001 - a broken install raises anything
        return False
    return True


@functools.cache
def _kernel() -> Any:
    import triton  # noqa: PLC0415
    import triton.language as tl  # noqa: PLC0415

    @triton.jit
    def dequant(packed_ptr, sz_ptr, out_ptr, N, K, KO_STRIDE, GROUP: tl.constexpr,  # noqa: N803
                TILES: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # noqa: N803
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)[:, None]  # (BN, 1)
        k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)[None, :]  # (1, BK)
        mask = (n < N) & (k < K)
        n_tile = n // 8
        a = n % 8
        k_outer = k // (16 * TILES)
        r = k % (16 * TILES)
        j = r // 32
        r2 = r % 32
        c = r2 // 8
        b = (r2 % 8) // 2
        h = r2 % 2
        t = 4 * a + b
        half = TILES // 2
        word_index = ((n_tile * KO_STRIDE + k_outer) * 32 + t) * half + j
        word = tl.load(packed_ptr + word_index, mask=mask, other=0)
        shift = 4 * (4 * h + c)
        code = (word >> shift) & 0xF
        group = k // GROUP
        scale = tl.load(sz_ptr + (group * N + n) * 2, mask=mask, other=0.0).to(tl.float32)
        zero = tl.load(sz_ptr + (group * N + n) * 2 + 1, mask=mask, other=0.0).to(tl.float32)
        value = (code.to(tl.float32) - 8.0) * scale + zero
        tl.store(out_ptr + n * K + k, value.to(out_ptr.dtype.element_ty), mask=mask)

    return dequant


def unpack_dequantize(packed: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int,
                      out: torch.Tensor | None = None) -> torch.Tensor:
    """(N, K) weights in the scales' dtype, `(q - 8) * scale + zero`, by one Triton kernel.

    Args:
        packed: int32 `[N / 8][K / (16 T)][32][T / 2]` (CUDA tinygemm layout).
        scales_and_zeros: `(K / group, N, 2)`.
        group_size: columns per scale group.
        out: optional (N, K) buffer to write.
    """
    n_tiles, k_outer, _, half_tiles = packed.shape
    n, k = n_tiles * 8, k_outer * half_tiles * 32
    if out is None:
        out = torch.empty(n, k, dtype=scales_and_zeros.dtype, device=packed.device)
    block_n, block_k = 32, 128
    grid = ((n + block_n - 1) // block_n, (k + block_k - 1) // block_k)
    _kernel()[grid](packed, scales_and_zeros, out, n, k, k_outer, GROUP=group_size,
                    TILES=half_tiles * 2, BLOCK_N=block_n, BLOCK_K=block_k)
    return out
