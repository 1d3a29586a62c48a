"""``openvla-ros <verb>``: dispatches to one module per verb.

Each verb module has ``add_arguments(parser)`` and ``main(args) -> int``; its heavy imports (torch,
rclpy) live inside ``main``, so ``openvla-ros --help`` stays fast and one verb never slows another.
A verb reports a known error by raising ``CliError``; ``main`` here prints it as the one line
``openvla-ros <verb>: <message>`` on stderr and exits 1, the same for every verb.

    openvla-ros make-tiny-model /tmp/tiny
    openvla-ros predict --model /tmp/tiny --image frame.png --instruction "put the spoon on the
    towel" --json
    openvla-ros demo widowx_bridge
"""

from __future__ import annotations

import argparse
import importlib
import sys

from openvla_ros.cli.errors import CliError

__all__ = ['CliError', 'VERBS', 'error_line', 'main']

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


def error_line(exc: CliError) -> str:
    """The first line of the message (one line on stderr), or the type of the error behind it."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause is not None else 'error'


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
        print(f'openvla-ros {args.verb}: interrupted', file=sys.stderr)
        return 130
    except CliError as exc:
        print(f'openvla-ros {args.verb}: {error_line(exc)}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
