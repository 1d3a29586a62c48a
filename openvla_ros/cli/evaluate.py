"""Success rate of a policy on a simulator task, each episode through the full ROS stack.

Examples:

    openvla-ros evaluate widowx_bridge --task carrot_on_plate --episodes 20
    openvla-ros evaluate widowx_bridge --task lift_block --episodes 5 --policy openvla --json
    openvla-ros evaluate widowx_bridge --task spoon_on_towel --episodes 20 --record outputs/bags
    openvla-ros evaluate franka_tabletop --task lift_block --episodes 10 --video outputs/videos
    openvla-ros evaluate widowx_bridge --task lift_block --episodes 20 --policy learned

Episode i uses scene seed --seed + i. The report gives the success rate with a 95 % (Wilson)
interval, the mean time to success and the safety monitor's clipped and rejected counts. With
--json the last line printed is one JSON object (success_rate, successes, episodes, ...).
--record DIR writes each episode as a rosbag2 MCAP bag that `openvla-ros record` reads as it is.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
import sys
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
    from openvla_ros.harness.rollouts import RolloutResult

__all__ = ['add_arguments', 'main']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_episode_arguments(parser)
    parser.add_argument('--episodes', type=int, default=10, help='number of seeded episodes')
    parser.add_argument('--video', type=Path, default=None, help="write each episode's video here")
    parser.add_argument(
        '--record',
        type=Path,
        default=None,
        help='write each episode as an MCAP bag here (for fine-tuning)',
    )
    parser.add_argument(
        '--place-offset',
        type=float,
        nargs=3,
        default=(0.0, 0.0, 0.0),
        metavar=('X', 'Y', 'Z'),
        help='scripted expert only: shift its place target [m] (a wrong expert)',
    )
    parser.add_argument('--json', action='store_true', help='print a JSON summary last')


def main(args: argparse.Namespace) -> int:
    """Check the arguments, run the seeded episodes, print the report (and JSON with --json)."""
    from openvla_ros.harness.runner import private_domain_id  # noqa: PLC0415

    _check_arguments(args)
    for folder in (args.video, args.record):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    isolate_dds()
    domain = args.domain_id if args.domain_id is not None else private_domain_id()
    print(describe_policy(args), file=sys.stderr, flush=True)
    work = args.record or args.video or Path('outputs/evaluate')
    work.mkdir(parents=True, exist_ok=True)
    model = ensure_model(args, work)
    results = _run_episodes(args, model, domain)
    summary = _summary(args, model, results)
    print(_report_line(args, summary))
    if args.json:
        print(json.dumps(summary))
    return 0


def _bag_path(args: argparse.Namespace, seed: int) -> Path | None:
    """Where --record writes the episode of this seed (None without --record)."""
    if args.record is None:
        return None
    return args.record / f'{args.profile}_{args.task or "default"}_seed{seed}'


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuses what would fail later, before any episode runs; --policy learned -> its model."""
    error = resolve_learned(args)
    if error:
        raise CliError(error)
    if args.episodes < 1:
        raise CliError(f'--episodes must be >= 1, got {args.episodes}')
    for i in range(args.episodes):
        bag = _bag_path(args, args.seed + i)
        if bag is not None and bag.exists():
            raise CliError(f'{bag} exists; choose another --record directory')
    check_task(args)
    check_model(args)


def _run_episodes(args: argparse.Namespace, model: str, domain: int) -> list[RolloutResult]:
    """Episode i on scene seed --seed + i, with a bar of episodes and successes on stderr."""
    from tqdm import tqdm  # noqa: PLC0415

    from openvla_ros.harness.rollouts import RolloutConfig, run_rollout  # noqa: PLC0415
    from openvla_ros.metrics.report import write_video  # noqa: PLC0415

    results: list[RolloutResult] = []
    bar = tqdm(range(args.episodes), desc='episodes', unit='ep', file=sys.stderr)
    for i in bar:
        seed = args.seed + i
        bag = _bag_path(args, seed)
        cfg = RolloutConfig(
            profile=args.profile,
            policy=args.policy,
            task=args.task,
            seed=seed,
            model=model,
            device=args.device,
            dtype=args.dtype,
            quantize=args.quantize,
            unnorm_key=args.unnorm_key,
            adapter=args.adapter,
            server_url=args.server_url,
            bag='' if bag is None else str(bag),
            place_offset=tuple(args.place_offset),
            domain_id=domain,
            camera_rate=10.0,
            frame_stride=1 if args.video else 10_000,
        )
        try:
            result = run_rollout(cfg)
        except (RuntimeError, ValueError) as exc:
            bar.close()
            raise CliError(f'episode {i} (seed {seed}): {exc}') from exc
        results.append(result)
        if args.video is not None and result.data.frames:
            write_video(result.data.frames, args.video / f'{result.task}_seed{seed}.mp4', 10.0)
        bar.set_postfix(success=f'{sum(r.success for r in results)}/{len(results)}')
    bar.close()
    return results


def _summary(args: argparse.Namespace, model: str, results: list[RolloutResult]) -> dict[str, Any]:
    """The report: success rate with its 95 % Wilson interval, safety counts, per episode."""
    from openvla_ros.metrics.success import wilson_interval  # noqa: PLC0415
    from openvla_ros.sim.outcome import count_failures  # noqa: PLC0415

    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, len(results))
    times = [r.time_to_success for r in results if r.success]
    return {
        'profile': args.profile,
        'task': results[0].task,
        'instruction': results[0].instruction,
        'policy': 'learned' if getattr(args, 'learned', '') else args.policy,
        'model': model or None,
        'episodes': len(results),
        'successes': successes,
        'success_rate': successes / len(results),
        'ci95': [round(low, 4), round(high, 4)],
        'mean_time_to_success_s': round(sum(times) / len(times), 2) if times else None,
        'clipped': sum(r.clipped for r in results),
        'rejected': sum(r.rejected for r in results),
        'passed': sum(r.passed for r in results),
        'seeds': [r.seed for r in results],
        # simulated seconds per wall-clock second (the simulator keeps the time: load slows it)
        'real_time_factor_min': round(min(r.real_time_factor for r in results), 3),
        'real_time_factor_mean': round(sum(r.real_time_factor for r in results) / len(results), 3),
        'lockstep_timeouts': sum(r.lockstep_timeouts for r in results),
        'holds': sum(r.holds for r in results),
        'failures': count_failures(r.outcome['outcome'] for r in results),
        'per_episode': [
            {
                'seed': r.seed,
                'success': r.success,
                'time_to_success_s': None
                if math.isnan(r.time_to_success)
                else round(r.time_to_success, 2),
                'clipped': r.clipped,
                'rejected': r.rejected,
                'real_time_factor': round(r.real_time_factor, 3),
                'holds': r.holds,
                **r.outcome,
            }
            for r in results
        ],
    }


def _report_line(args: argparse.Namespace, summary: dict[str, Any]) -> str:
    """One human line: rate and interval, time to success, safety, holds, real-time factor,
    and the failures by outcome."""
    from openvla_ros.metrics.success import wilson_interval  # noqa: PLC0415
    from openvla_ros.sim.outcome import describe_failures  # noqa: PLC0415

    low, high = wilson_interval(summary['successes'], summary['episodes'])  # unrounded
    failures = describe_failures(summary['failures'])
    return (
        f'{summary["task"]} ({args.profile}, {summary["policy"]}): '
        f'{summary["successes"]}/{summary["episodes"]} = '
        f'{100 * summary["success_rate"]:.0f} % (95 % CI {100 * low:.0f}-{100 * high:.0f} %), '
        f'mean time to success {summary["mean_time_to_success_s"]} s, '
        f'safety clipped {summary["clipped"]}, rejected {summary["rejected"]}, '
        f'holds {summary["holds"]}, '
        f'real-time factor {summary["real_time_factor_min"]}-{summary["real_time_factor_mean"]} '
        '(min-mean)' + (f'; failures: {failures}' if failures else '')
    )
