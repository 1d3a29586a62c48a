"""``openvla-ros <verb>``: dispatches to one module per verb.

Each verb module has ``add_arguments(parser)`` and ``main(args) -> int``; it is imported only when
used, so ``openvla-ros --help`` stays fast and a verb's heavy imports (torch, rclpy) never slow
another.

    openvla-ros make-tiny-model /tmp/tiny
    openvla-ros predict --model /tmp/tiny --image frame.png --instruction "put the spoon on the
    towel" --json
    openvla-ros demo widowx_bridge
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ['VERBS', 'main']

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    'make-tiny-model': (
        'openvla_ros.cli.make_tiny_model',
        'write a tiny random OpenVLA checkpoint (same architecture and layout)',
    ),
    'predict': (
        'openvla_ros.cli.predict',
        'one image + instruction -> one action (JSON with --json)',
    ),
    'demo': ('openvla_ros.cli.demo', 'run the whole stack on a simulated arm: video, plot, MCAP'),
    'evaluate': ('openvla_ros.cli.evaluate', 'success rate of a policy over seeded sim episodes'),
    'record': ('openvla_ros.cli.record', 'rosbag2 bags -> fine-tuning dataset (episodes + stats)'),
    'finetune': (
        'openvla_ros.cli.finetune',
        'fine-tune OpenVLA (LoRA or --full) on a recorded dataset; runs under torchrun',
    ),
    'learn': (
        'openvla_ros.cli.learn',
        'demonstrations -> dataset -> training -> held-out evaluation in the simulator',
    ),
    'serve': ('openvla_ros.cli.serve', 'serve OpenVLA over HTTP (policy node backend: remote)'),
    'bench': ('openvla_ros.cli.bench', 'latency, actions/s and memory of each inference path'),
}


class CliError(Exception):
    """A known error: printed as one line on stderr, exit code 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='openvla-ros',
        description='OpenVLA on ROS 2 robot arms.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest='verb', metavar='VERB')
    for verb, (module, help_text) in VERBS.items():
        # The module is imported here only for its arguments; heavy imports live inside its main().
        verb_parser = sub.add_parser(
            verb,
            help=help_text,
            description=help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod = importlib.import_module(module)
        verb_parser.description = (mod.__doc__ or help_text).strip()
        mod.add_arguments(verb_parser)
        verb_parser.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.main(args) or 0)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except CliError as exc:
        print(f'openvla-ros {args.verb}: {exc}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
