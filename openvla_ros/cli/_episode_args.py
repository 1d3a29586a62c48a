"""Arguments shared by ``demo`` and ``evaluate`` (the policy and the simulated scene)."""

from __future__ import annotations

import argparse

from openvla_ros.cli._model_args import add_model_arguments

PROFILES = ('widowx_bridge', 'franka_tabletop', 'franka_droid')


def add_episode_arguments(parser: argparse.ArgumentParser) -> None:
    """The profile, the policy and how to run it."""
    parser.add_argument('profile', choices=PROFILES, help='robot profile (config/<profile>.yaml)')
    parser.add_argument('--task', default='', help="simulator task (default: the profile's)")
    parser.add_argument(
        '--policy',
        default='scripted',
        choices=('scripted', 'openvla', 'remote'),
        help='scripted expert (default), OpenVLA in this process, or a server',
    )
    parser.add_argument(
        '--model',
        default='',
        help='OpenVLA checkpoint dir or hub id (--policy openvla; default: a tiny '
        'random model, which moves the arm aimlessly)',
    )
    parser.add_argument('--adapter', default='', help='LoRA adapter directory')
    parser.add_argument('--unnorm-key', default='', help='dataset statistics key')
    add_model_arguments(parser)
    parser.add_argument(
        '--server-url', default='http://127.0.0.1:8000', help='policy server (--policy remote)'
    )
    parser.add_argument('--seed', type=int, default=0, help='scene seed (object placement)')
    parser.add_argument(
        '--domain-id',
        type=int,
        default=None,
        help='ROS_DOMAIN_ID of the run (default: a private one, printed, so that '
        "the demo never meets a real robot's topics)",
    )


def isolate_dds() -> None:
    """Keeps the run's DDS traffic on this machine (before rclpy starts)."""
    import os  # noqa: PLC0415

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


def describe_policy(args: argparse.Namespace) -> str:
    """One plain sentence about what drives the arm, printed before the run."""
    if args.policy == 'scripted':
        return (
            'policy: the SCRIPTED EXPERT (reads true object poses from the simulator); '
            'use --policy openvla --model ... for OpenVLA'
        )
    if args.policy == 'remote':
        return f'policy: OpenVLA on the server {args.server_url}'
    if not args.model:
        return (
            'policy: a TINY RANDOM OpenVLA model (real architecture, random weights): it runs '
            'the whole stack but the arm moves aimlessly; use --model openvla/openvla-7b '
            'where weights and a GPU exist'
        )
    return (
        f'policy: OpenVLA {args.model} on {args.device} ({args.dtype}, quantize={args.quantize})'
    )


def ensure_model(args: argparse.Namespace, work_dir) -> str:
    """The model to load: --model, or a tiny random checkpoint made in work_dir."""
    if args.policy != 'openvla' or args.model:
        return args.model
    from openvla_ros.model.tiny import make_tiny_model  # noqa: PLC0415

    path = work_dir / 'tiny_random_openvla'
    if not (path / 'config.json').is_file():
        make_tiny_model(path, seed=0)
    return str(path)
