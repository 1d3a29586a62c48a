"""Predict one robot action from one image and one instruction.

Examples:

    openvla-ros predict --model openvla/openvla-7b --image frame.png \\
        --instruction "put the spoon on the towel" --unnorm-key bridge_orig \\
        --device cuda --dtype bfloat16
    openvla-ros predict --model /tmp/openvla-tiny --image frame.jpg \\
        --instruction "open the drawer" --unnorm-key bridge_orig --json
    openvla-ros predict --model openvla/openvla-7b --image frame.png \\
        --instruction "pick up the cup" --unnorm-key fractal20220817_data \\
        --device cuda --quantize 4bit

With --json the last line on stdout is one JSON object: action (floats), normalized_action,
tokens (ids), latency_s (preprocess + model + decode), unnorm_key, model. Known errors print one
line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from openvla_ros.cli._model_args import add_inference_arguments, add_model_arguments
from openvla_ros.cli.errors import CliError

__all__ = ['add_arguments', 'main']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the verb's arguments."""
    parser.add_argument('--model', required=True, help='checkpoint directory or hub id')
    parser.add_argument('--image', required=True, type=Path, help='image file (PNG, JPEG, ...)')
    parser.add_argument('--instruction', required=True, help='task in natural language')
    parser.add_argument(
        '--unnorm-key', default=None, help='dataset statistics key (e.g. bridge_orig)'
    )
    add_model_arguments(parser)
    add_inference_arguments(parser)
    parser.add_argument(
        '--json', action='store_true', help='print one JSON object as the last line'
    )


def main(args: argparse.Namespace) -> int:
    """Load the model, read the image, predict, print."""
    if not args.image.is_file():
        raise CliError(f'no image file {args.image}')
    if not args.instruction.strip():
        raise CliError('--instruction is empty')
    if not (args.device == 'cpu' or args.device.startswith('cuda')):
        raise CliError(f"--device must be 'cpu' or 'cuda[:N]', got {args.device!r}")
    import logging

    from PIL import Image, UnidentifiedImageError

    from openvla_ros.model import OpenVLAError, OpenVLAPolicy

    logging.basicConfig(
        level=logging.INFO if not args.json else logging.WARNING, format='%(message)s'
    )
    try:
        with Image.open(args.image) as handle:
            image = handle.convert('RGB')
    except (OSError, UnidentifiedImageError) as exc:
        raise CliError(f'cannot read image {args.image}: {exc}') from exc
    try:
        policy = OpenVLAPolicy.load(
            args.model,
            device=args.device,
            dtype=args.dtype,
            quantize=args.quantize,
            adapter=args.adapter,
            merge_adapter=args.adapter is not None,
            center_crop=args.center_crop,
            decode=args.decode,
        )
        key = policy.resolve_unnorm_key(args.unnorm_key)
        prediction = policy.predict(image, args.instruction, key)
    except (OpenVLAError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        result = {
            'action': [float(v) for v in prediction.action],
            'normalized_action': [float(v) for v in prediction.normalized_action],
            'tokens': list(prediction.tokens),
            'latency_s': prediction.latency_s,
            'unnorm_key': key,
            'model': args.model,
        }
        print(json.dumps(result))
    else:
        values = ', '.join(f'{v:+.4f}' for v in prediction.action)
        print(f'action ({key}): [{values}]')
        print(f'tokens: {list(prediction.tokens)}  latency: {prediction.latency_s * 1000:.1f} ms')
    return 0
