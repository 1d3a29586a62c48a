"""Arguments shared by ``demo`` and ``evaluate`` (the policy and the simulated scene)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from openvla_ros.cli._model_args import add_model_arguments
from openvla_ros.cli.errors import CliError

PROFILES = ('widowx_bridge', 'franka_tabletop', 'franka_droid')
#: Checkpoints learned by `openvla-ros learn` that ship with the package, one folder per task.
LEARNED_DIR = Path(__file__).resolve().parents[1] / 'model' / 'assets' / 'learned'


def learned_checkpoints() -> dict[str, Path]:
    """task -> shipped learned checkpoint directory (those with a `learned.json`)."""
    if not LEARNED_DIR.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(LEARNED_DIR.iterdir())
        if (p / 'learned.json').is_file() and (p / 'config.json').is_file()
    }


def resolve_learned(args: argparse.Namespace) -> str:
    """`--policy learned` -> OpenVLA on the shipped checkpoint of the task; '' or an error.

    The checkpoint is an ordinary OpenVLA checkpoint directory inside the package (no
    download); its `learned.json` names the profile, task and dataset statistics key.
    """
    if args.policy != 'learned':
        return ''
    from openvla_ros.harness.rollouts import DEFAULT_TASKS  # noqa: PLC0415

    task = args.task or DEFAULT_TASKS[args.profile]
    shipped = learned_checkpoints()
    if task not in shipped:
        have = ', '.join(sorted(shipped)) or 'none'
        return f'no learned checkpoint ships for task {task!r} (shipped: {have})'
    meta = json.loads((shipped[task] / 'learned.json').read_text())
    if meta.get('profile') and meta['profile'] != args.profile:
        return (
            f'the learned {task} checkpoint was trained on {meta["profile"]}, not {args.profile}'
        )
    args.policy = 'openvla'
    args.learned = str(shipped[task])
    args.task = task
    args.model = args.model or str(shipped[task])
    args.unnorm_key = args.unnorm_key or meta['unnorm_key']
    return ''


def check_task(args: argparse.Namespace) -> None:
    """Refuses a --task the profile's robot does not have (before the simulator starts)."""
    from openvla_ros.bringup.profiles import load_profile  # noqa: PLC0415
    from openvla_ros.harness.rollouts import DEFAULT_TASKS  # noqa: PLC0415
    from openvla_ros.sim.tasks import get_task  # noqa: PLC0415

    robot = str(load_profile(args.profile).get('robot'))
    try:
        get_task(args.task or DEFAULT_TASKS[args.profile], robot)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def check_model(args: argparse.Namespace) -> None:
    """Refuses an OpenVLA --model that is neither a checkpoint directory nor a reachable hub id.

    Checked here, before the simulator starts, rather than when the policy node loads it. A hub id
    is fetched into the local cache now (the node then loads it from there).
    """
    if args.policy != 'openvla' or not args.model:
        return
    from openvla_ros.model.errors import OpenVLAError  # noqa: PLC0415
    from openvla_ros.model.loading import resolve_model_dir  # noqa: PLC0415

    try:
        resolve_model_dir(args.model)
    except OpenVLAError as exc:
        raise CliError(str(exc)) from exc


def add_episode_arguments(parser: argparse.ArgumentParser) -> None:
    """The profile, the policy and how to run it."""
    parser.add_argument('profile', choices=PROFILES, help='robot profile (config/<profile>.yaml)')
    parser.add_argument('--task', default='', help="simulator task (default: the profile's)")
    parser.add_argument(
        '--policy',
        default='scripted',
        choices=('scripted', 'openvla', 'learned', 'remote'),
        help='scripted expert (default), OpenVLA in this process, the OpenVLA checkpoint '
        'learned in the simulator that ships for the task (learned), or a server',
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
    if getattr(args, 'learned', ''):
        return (
            f'policy: the LEARNED OpenVLA checkpoint shipped for {args.task} ({args.learned}), '
            'trained by `openvla-ros learn` on simulator demonstrations'
        )
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
