"""Run the whole stack on a simulated arm: policy -> rate limiter -> safety monitor -> adapter ->
sim.

Examples:

    openvla-ros demo widowx_bridge                      # scripted expert, carrot_on_plate
    openvla-ros demo widowx_bridge --task spoon_on_towel --out outputs/demo
    openvla-ros demo franka_tabletop                    # lift_block on the Franka
    openvla-ros demo widowx_bridge --policy openvla     # tiny random model: plumbing only
    openvla-ros demo widowx_bridge --task lift_block --policy learned   # learned in the sim
    openvla-ros demo widowx_bridge --policy openvla --model openvla/openvla-7b \\
        --device cuda --dtype bfloat16 --quantize 4bit --duration 30

It writes, under --out: <name>.mp4 (the camera), <name>.png (commanded vs reached end-effector
positions, and policy latencies), <name>_bag/ (an MCAP recording of the run: camera, instruction,
chunks, commanded targets, joint states, safety status) and <name>.json (a summary).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TYPE_CHECKING

from openvla_ros.cli._episode_args import (
    add_episode_arguments,
    check_model,
    check_task,
    describe_policy,
    ensure_model,
    isolate_dds,
    resolve_learned,
)
from openvla_ros.cli.errors import CliError

if TYPE_CHECKING:
    from openvla_ros.harness.rollouts import RolloutConfig, RolloutResult

__all__ = ['add_arguments', 'main']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_episode_arguments(parser)
    parser.add_argument(
        '--duration',
        type=float,
        default=0.0,
        help='seconds to run after the instruction (default: the task step limit)',
    )
    parser.add_argument('--out', type=Path, default=Path('outputs/demo'), help='output directory')
    parser.add_argument('--no-record', action='store_true', help='skip the MCAP recording')
    parser.add_argument('--instruction', default='', help='override the task instruction')


def main(args: argparse.Namespace) -> int:
    """Check the arguments, run one episode with a progress bar, write and print the outputs."""
    from openvla_ros.harness.rollouts import RolloutConfig  # noqa: PLC0415
    from openvla_ros.harness.runner import private_domain_id  # noqa: PLC0415

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    name = f'{args.profile}_{args.task or "default"}_{args.policy}_seed{args.seed}'
    bag = out / f'{name}_bag'
    _check_arguments(args, bag)
    isolate_dds()
    domain = args.domain_id if args.domain_id is not None else private_domain_id()
    print(describe_policy(args), flush=True)
    print(
        f'ROS_DOMAIN_ID={domain} (private to this demo; set --domain-id to watch it in rviz)',
        flush=True,
    )
    cfg = RolloutConfig(
        profile=args.profile,
        policy=args.policy,
        task=args.task,
        seed=args.seed,
        duration=args.duration,
        stop_on_success=False,
        model=ensure_model(args, out),
        device=args.device,
        dtype=args.dtype,
        quantize=args.quantize,
        unnorm_key=args.unnorm_key,
        adapter=args.adapter,
        server_url=args.server_url,
        instruction=args.instruction,
        bag='' if args.no_record else str(bag),
        domain_id=domain,
    )
    result = _run_with_progress(cfg)
    summary = _write_outputs(args, out, name, cfg, result)
    summary['bag'] = '' if args.no_record else str(bag)
    (out / f'{name}.json').write_text(json.dumps(summary, indent=2))
    _print_summary(result, summary)
    return 0


def _check_arguments(args: argparse.Namespace, bag: Path) -> None:
    """Refuses what would fail later (before anything starts); --policy learned -> its model."""
    error = resolve_learned(args)
    if error:
        raise CliError(error)
    if bag.exists() and not args.no_record:
        raise CliError(f'{bag} exists; remove it or choose another --out')
    check_task(args)
    check_model(args)


def _run_with_progress(cfg: RolloutConfig) -> RolloutResult:
    """The episode, with a percentage bar of its simulated time on stderr."""
    from tqdm import tqdm  # noqa: PLC0415

    from openvla_ros.harness.rollouts import run_rollout  # noqa: PLC0415

    bar = tqdm(
        total=100,
        desc='demo',
        unit='%',
        mininterval=0.5,
        bar_format='{l_bar}{bar}| {elapsed}<{remaining}',
    )

    def progress(elapsed: float, total: float) -> None:
        done = min(100, int(100 * elapsed / max(total, 1e-9)))
        if done > bar.n:
            bar.update(done - bar.n)

    try:
        return run_rollout(cfg, progress)
    except (RuntimeError, ValueError, FileExistsError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        bar.close()


def _write_outputs(
    args: argparse.Namespace, out: Path, name: str, cfg: RolloutConfig, result: RolloutResult
) -> dict[str, Any]:
    """Writes <name>.mp4 and <name>.png under out; returns the summary (without its bag)."""
    import numpy as np  # noqa: PLC0415

    from openvla_ros.metrics.report import tracking_error, write_plot, write_video  # noqa: PLC0415

    data = result.data
    video = write_video(data.frames, out / f'{name}.mp4', fps=cfg.camera_rate)
    plot = write_plot(
        data.commanded,
        data.reached,
        data.latencies,
        out / f'{name}.png',
        f'{args.profile}: "{result.instruction}" ({args.policy})',
    )
    error = tracking_error(data.commanded, data.reached)
    return {
        'profile': args.profile,
        'task': result.task,
        'instruction': result.instruction,
        'policy': 'learned' if getattr(args, 'learned', '') else args.policy,
        'success': result.success,
        'time_to_success_s': None if not result.success else round(result.time_to_success, 2),
        **result.outcome,
        'duration_s': round(result.duration, 2),
        'chunks': result.chunks,
        'frames': len(data.frames),
        'safety': {
            'passed': result.passed,
            'clipped': result.clipped,
            'rejected': result.rejected,
        },
        'tracking_error_m': {
            'median': float(np.median(error)) if error.size else None,
            'max': float(error.max()) if error.size else None,
        },
        'video': str(video),
        'plot': str(plot),
    }


def _print_summary(result: RolloutResult, summary: dict[str, Any]) -> None:
    """Outcome and safety counts, the output paths, then the summary as one JSON line."""
    if result.success:
        outcome = f'SUCCESS at {result.time_to_success:.1f} s'
    else:
        outcome = f'not done ({result.outcome["outcome"]})'
    print(
        f'task {result.task}: {outcome} (ran {result.duration:.1f} s); {result.chunks} chunks; '
        f'safety passed/clipped/rejected {result.passed}/{result.clipped}/{result.rejected}'
    )
    bag = summary['bag']
    print(f'video {summary["video"]}\nplot  {summary["plot"]}' + (f'\nbag   {bag}' if bag else ''))
    print(json.dumps(summary))
