"""The names a user may choose for loading and running OpenVLA, in one torch-free module.

The CLI flags, the policy node's parameter choices and the launch arguments all read these, so
that ``--help`` and a launch file never import torch just to list them.
"""

from __future__ import annotations

#: Compute precisions ('auto' is added where a caller resolves it: bfloat16 on CUDA, float32 on
#: the CPU; see ``openvla_ros.model.loading.resolve_precision``).
DTYPE_NAMES: tuple[str, ...] = ('float32', 'bfloat16', 'float16')
#: '8bit'/'4bit': bitsandbytes (LLM.int8 / NF4, kept for QLoRA and for users who want it);
#: 'int8'/'int4': weight-only on core PyTorch kernels; 'auto': int4 on CUDA, none on the CPU.
QUANTIZE_MODES: tuple[str, ...] = ('none', '8bit', '4bit', 'int8', 'int4', 'auto')
#: The quantization modes that need bitsandbytes (and a GPU).
BNB_MODES: tuple[str, ...] = ('8bit', '4bit')
#: 'fast': static-cache greedy loop; 'reference': transformers ``generate``; 'graph': our own
#: Llama forward, replayed from CUDA graphs on a GPU (eager on the CPU).
DECODE_MODES: tuple[str, ...] = ('fast', 'reference', 'graph')

__all__ = ['BNB_MODES', 'DECODE_MODES', 'DTYPE_NAMES', 'QUANTIZE_MODES']
