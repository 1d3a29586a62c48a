"""How a verb that loads OpenVLA names the model's device, precision and quantization.

One place for these flags, so that every verb spells and limits them alike. The choices mirror
``openvla_ros.model`` (importing it here would load torch just to print ``--help``).
"""

from __future__ import annotations

import argparse

DTYPES = ('float32', 'bfloat16', 'float16')
QUANTIZE = ('none', '8bit', '4bit')
DECODE = ('fast', 'reference')


def add_model_arguments(parser: argparse.ArgumentParser, *, dtype_default: str | None = 'float32',
                        dtype_help: str = 'compute dtype') -> None:
    """--device, --dtype and --quantize."""
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]' (default: cpu)")
    parser.add_argument('--dtype', default=dtype_default, choices=DTYPES, help=dtype_help)
    parser.add_argument('--quantize', default='none', choices=QUANTIZE,
                        help='bitsandbytes weight quantization (NF4 for 4bit)')


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """--adapter, --center-crop and --decode: how a loaded model predicts."""
    parser.add_argument('--adapter', default=None,
                        help='LoRA adapter directory (merged into the weights)')
    parser.add_argument('--center-crop', action='store_true',
                        help='90%% area center crop (crop-augmented fine-tunes)')
    parser.add_argument('--decode', default='fast', choices=DECODE,
                        help='decoding path (default: fast)')
