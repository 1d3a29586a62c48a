"""The whole learning loop in the simulator: record expert demonstrations (with DART noise),
build the dataset, train a small OpenVLA (full-parameter), pick the best checkpoint on selection
seeds, evaluate it on held-out seeds through the full ROS stack, and write a report.

Examples:

    openvla-ros learn widowx_bridge --task lift_block --out runs/lift
    openvla-ros learn widowx_bridge --task carrot_on_plate --out runs/carrot --demos 120 \\
        --steps 3000
    openvla-ros learn widowx_bridge --task lift_block --out /tmp/smoke --demos 2 --steps 4 \\
        --save-every 2 --select-episodes 1 --eval-episodes 1 --model-size micro \\
        --batch-size 2 --vision-steps 2 --use-failed-demos --json

Writes under --out: bags/ (MCAP demonstrations), dataset/, base/ (the model before the action
training, its ViTs pretrained on simulator views with --vision-steps), train/
(checkpoints, finetune.json), best/ (the chosen checkpoint: `--model runs/lift/best` in predict,
serve, evaluate and demo), report.json, report.md and learning.png (success against training
steps and against demonstrations), and learn.json (progress). Run the same command again to
resume after an interruption. Seeds: demonstrations --demo-seed + i, selection --select-seed + i,
evaluation --eval-seed + i (disjoint ranges, checked). With --json the last line printed is the
report as one JSON object. Details and results: docs/learning.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from openvla_ros.cli._episode_args import isolate_dds, PROFILES
from openvla_ros.cli.errors import CliError

__all__ = ['add_arguments', 'main']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the verb's arguments."""
    parser.add_argument('profile', choices=PROFILES, help='robot profile')
    parser.add_argument('--task', default='lift_block', help='simulator task')
    parser.add_argument('--out', type=Path, required=True, help='output directory')
    parser.add_argument('--demos', type=int, default=400, help='expert episodes to record')
    parser.add_argument(
        '--noise',
        type=float,
        nargs=2,
        default=(0.006, 0.03),
        metavar=('M', 'RAD'),
        help='DART noise std on executed expert actions (translation, rotation)',
    )
    parser.add_argument(
        '--noise-probability', type=float, default=0.3, help='share of perturbed expert ticks'
    )
    parser.add_argument(
        '--expert-plan-from',
        default='measured',
        choices=('measured', 'target'),
        help='the expert plans each tick on the measured pose, as the camera shows it '
        '(default), or open loop on the commanded target, which the arm lags',
    )
    parser.add_argument(
        '--expert-speed',
        type=float,
        nargs=2,
        default=(0.04, 0.15),
        metavar=('M', 'RAD'),
        help="the expert's largest step per tick (translation per axis, rotation)",
    )
    parser.add_argument(
        '--expert-gain',
        type=float,
        default=0.4,
        help='planned on the measured pose: share of the way to the waypoint per tick',
    )
    parser.add_argument(
        '--miss-probability',
        type=float,
        default=0.0,
        help='share of demonstrations whose first grasp misses on purpose, then recovers '
        '(the data shows the way back from a missed grasp; those ticks carry no label)',
    )
    parser.add_argument(
        '--demo-time-factor',
        type=float,
        default=0.0,
        help='simulated seconds per wall-clock second at most while recording demonstrations '
        '(0: as fast as the graph keeps up; selection and evaluation run in real time)',
    )
    parser.add_argument(
        '--model-size',
        default='small224',
        choices=('micro', 'small', 'small224', 'medium'),
        help='widths/depths (openvla_ros/finetune/small_model.py)',
    )
    parser.add_argument(
        '--vision-steps',
        type=int,
        default=0,
        help='steps teaching the ViTs where the objects and the gripper are, on simulator views '
        'of the demonstration scenes, before the action training (0, the default: none; 400 '
        'was tried, docs/learning.md)',
    )
    parser.add_argument(
        '--vision-views', type=int, default=5, help='views rendered per demonstration scene'
    )
    parser.add_argument('--steps', type=int, default=11000, help='optimizer steps')
    parser.add_argument('--batch-size', type=int, default=16, help='samples per step')
    parser.add_argument('--lr', type=float, default=1e-3, help='peak learning rate (cosine)')
    parser.add_argument('--warmup-steps', type=int, default=50, help='lr warm-up steps')
    parser.add_argument(
        '--augment', default='camera', choices=('none', 'openvla', 'camera'), help='augmentation'
    )
    parser.add_argument(
        '--bin-sigma',
        type=float,
        default=3.0,
        help='Gaussian soft targets over this many neighbouring action bins (0: one-hot, as '
        'OpenVLA; docs/learning.md has the comparison)',
    )
    parser.add_argument(
        '--save-every', type=int, default=2750, help='checkpoint (selection candidate) every N'
    )
    parser.add_argument(
        '--select-episodes', type=int, default=8, help='selection episodes per checkpoint'
    )
    parser.add_argument('--eval-episodes', type=int, default=20, help='final evaluation episodes')
    parser.add_argument('--demo-seed', type=int, default=1000, help='first demonstration seed')
    parser.add_argument('--select-seed', type=int, default=5000, help='first selection seed')
    parser.add_argument('--eval-seed', type=int, default=9000, help='first evaluation seed')
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument(
        '--drop-still-labels',
        action='store_true',
        help="drop the expert's hold-still labels from the dataset, as OpenVLA's zero-action "
        'filter does (default: keep them; a scripted expert holds still on purpose)',
    )
    parser.add_argument(
        '--use-failed-demos',
        action='store_true',
        help='also train on expert episodes that failed (for smoke tests: where the arm did '
        'not follow, e.g. a safety hold, the labels no longer match the frames)',
    )
    parser.add_argument(
        '--device', default='cpu', help="training device: 'cpu' or 'cuda[:N]' (episodes run here)"
    )
    parser.add_argument(
        '--workers',
        type=int,
        default=-1,
        help='processes that build training batches ahead (-1: 0 on the CPU, up to 8 on CUDA)',
    )
    parser.add_argument(
        '--stop-after',
        default='',
        choices=('demos', 'dataset', 'base', 'train', 'select'),
        help='run the stages up to this one, then stop (run again without it to go on; e.g. '
        'record here, train the dataset with `finetune` on a GPU machine)',
    )
    parser.add_argument('--json', action='store_true', help='print the report as JSON last')


def main(args: argparse.Namespace) -> int:
    """Run or resume the loop; print where the report is."""
    from openvla_ros.finetune.learn import LearnConfig, run_learn  # noqa: PLC0415

    isolate_dds()
    try:
        config = LearnConfig(
            profile=args.profile,
            task=args.task,
            out=str(args.out),
            demos=args.demos,
            noise=tuple(args.noise),
            noise_probability=args.noise_probability,
            expert_plan_from=args.expert_plan_from,
            expert_speed=tuple(args.expert_speed),
            expert_gain=args.expert_gain,
            miss_probability=args.miss_probability,
            demo_time_factor=args.demo_time_factor,
            model_size=args.model_size,
            vision_steps=args.vision_steps,
            vision_views=args.vision_views,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.warmup_steps,
            augment=args.augment,
            bin_sigma=args.bin_sigma,
            save_every=args.save_every,
            select_episodes=args.select_episodes,
            eval_episodes=args.eval_episodes,
            demo_seed=args.demo_seed,
            select_seed=args.select_seed,
            eval_seed=args.eval_seed,
            seed=args.seed,
            threads=args.threads,
            keep_still=not args.drop_still_labels,
            use_failed_demos=args.use_failed_demos,
            device=args.device,
            workers=args.workers,
            stop_after=args.stop_after or '',
        )
        report = run_learn(config, say=lambda text: print(text, file=sys.stderr, flush=True))
    except (ValueError, RuntimeError, OSError) as exc:
        raise CliError(str(exc)) from exc
    if 'stopped_after' in report:
        print(f'stopped after {report["stopped_after"]}; progress in {report["state"]}')
        if args.json:
            print(json.dumps(report))
        return 0
    evaluation = report['evaluation']
    print(
        f'{report["task"]}: {evaluation["successes"]}/{evaluation["episodes"]} on held-out seeds '
        f'(95 % Wilson {evaluation["ci95"]}), {report["demonstrations_used"]} demonstrations, '
        f'{report["training_steps"]} steps (best {report["best_step"]}), '
        f'{report["total_time_s"]} s; report: {report["paths"]["markdown"]}'
    )
    if args.json:
        print(json.dumps(report))
    return 0
