"""Write a tiny, randomly initialised OpenVLA checkpoint (real architecture, layout and tokenizer).

Examples:

    openvla-ros make-tiny-model /tmp/openvla-tiny
    openvla-ros make-tiny-model /tmp/openvla-tiny --seed 3
    openvla-ros predict --model /tmp/openvla-tiny --image frame.png \\
        --instruction "put the spoon on the towel" --unnorm-key bridge_orig --json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from openvla_ros.cli.errors import CliError

__all__ = ['add_arguments', 'main']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the verb's arguments."""
    parser.add_argument('directory', type=Path, help='output directory (created if needed)')
    parser.add_argument('--seed', type=int, default=0, help='weight seed (default: 0)')


def main(args: argparse.Namespace) -> int:
    """Build and save the tiny model; print its directory."""
    if args.seed < 0:
        raise CliError(f'--seed must be >= 0, got {args.seed}')
    if args.directory.exists() and not args.directory.is_dir():
        raise CliError(f'{args.directory} exists and is not a directory')
    from openvla_ros.model.tiny import make_tiny_model

    try:
        out = make_tiny_model(args.directory, seed=args.seed)
    except OSError as exc:
        raise CliError(f'cannot write {args.directory}: {exc}') from exc
    print(out)
    return 0
