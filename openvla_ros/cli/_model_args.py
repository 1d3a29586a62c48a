"""How a verb that loads OpenVLA names the model's device, precision and quantization.

One place for these flags, so that every verb spells and limits them alike. The choices come from
the torch-free ``openvla_ros.model.choices`` (``--help`` never loads torch).
"""

from __future__ import annotations

import argparse

from openvla_ros.model.choices import DECODE_MODES, DTYPE_NAMES, QUANTIZE_MODES

DTYPES = (*DTYPE_NAMES, 'auto')
QUANTIZE = QUANTIZE_MODES
DECODE = DECODE_MODES


def add_model_arguments(
    parser: argparse.ArgumentParser,
    *,
    dtype_default: str | None = 'float32',
    dtype_help: str = 'compute dtype',
) -> None:
    """--device, --dtype and --quantize."""
    parser.add_argument(
        '--device',
        default='cpu',
        help="'cpu', 'cuda[:N]' or 'auto' (CUDA when present; default: cpu)",
    )
    parser.add_argument(
        '--dtype',
        default=dtype_default,
        choices=DTYPES,
        help=f'{dtype_help} (auto: bfloat16 on CUDA, float32 on the CPU)',
    )
    parser.add_argument(
        '--quantize',
        default='none',
        choices=QUANTIZE,
        help='weight quantization: int8/int4 weight-only on core PyTorch kernels '
        '(Llama layers), 8bit/4bit bitsandbytes (LLM.int8/NF4), auto = int4 '
        'on CUDA and none on the CPU',
    )


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """--adapter, --center-crop and --decode: how a loaded model predicts."""
    parser.add_argument(
        '--adapter', default=None, help='LoRA adapter directory (merged into the weights)'
    )
    parser.add_argument(
        '--center-crop',
        action='store_true',
        help='90%% area center crop (crop-augmented fine-tunes)',
    )
    parser.add_argument(
        '--decode',
        default='fast',
        choices=DECODE,
        help='decoding path (default: fast; graph: CUDA graphs on a GPU)',
    )
