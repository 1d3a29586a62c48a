"""Benchmark OpenVLA inference: latency, actions/s and memory, every number a ratio to `reference`.

Examples:

    openvla-ros bench --model /tmp/openvla-tiny --unnorm-key bridge_orig        # CPU, tiny model
    openvla-ros bench --model openvla/openvla-7b --unnorm-key bridge_orig \\
        --device cuda --dtype bfloat16 --n 50
    openvla-ros bench --model openvla/openvla-7b --unnorm-key bridge_orig \\
        --device cuda --dtype bfloat16 --quantize 4bit
    openvla-ros bench --model /tmp/openvla-tiny --unnorm-key bridge_orig --pipeline --control
    openvla-ros bench --model random-7b --unnorm-key bridge_orig --device cuda --dtype bfloat16

Modes: `reference` runs transformers `generate` the way OpenVLA's README does; `fast` is our
static-KV-cache greedy loop; `graph` is our own Llama forward replayed from CUDA graphs (eager on
the CPU). All run on the same weights and inputs in this process; `fast`
reports its token agreement with `reference`. The whole GPU table (bf16, int8, int4, batched) comes
from `scripts/gpu_bench.sh` instead. --pipeline adds what the ROS path costs on top of the
model (image message in -> ActionChunk out, through a real policy node); --control adds the rate
limiter, safety monitor and IK rates. Output: a Markdown table, and with --json one JSON object
last.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from openvla_ros.cli._model_args import add_model_arguments
from openvla_ros.cli.errors import CliError

__all__ = ['add_arguments', 'main']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--model',
        required=True,
        help='checkpoint directory or hub id, or random-7b / random-tiny: random '
        'weights of that size built on the device (no download)',
    )
    parser.add_argument('--unnorm-key', default=None, help='dataset statistics key')
    add_model_arguments(parser)
    parser.add_argument(
        '--modes',
        default='reference,fast',
        help='comma-separated decode modes: reference, fast, graph (reference first is the '
        'baseline)',
    )
    parser.add_argument('--n', type=int, default=20, help='timed predictions per mode')
    parser.add_argument('--warmup', type=int, default=3, help='untimed predictions per mode first')
    parser.add_argument(
        '--pipeline',
        action='store_true',
        help='also measure the ROS path overhead (tiny models: CPU is fine)',
    )
    parser.add_argument(
        '--control',
        action='store_true',
        help='also measure the control core (limiter, monitor, IK)',
    )
    parser.add_argument('--json', action='store_true', help='print one JSON object last')


def main(args: argparse.Namespace) -> int:
    """Check the arguments, load the policy, time each mode, print the table (and JSON)."""
    modes = _check_arguments(args)
    import numpy as np  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from openvla_ros.metrics.benchmark import (  # noqa: PLC0415
        as_dict,
        bench_policy,
        environment,
        format_table,
        peak_rss_bytes,
    )

    policy, key = _load_policy(args)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
    bar = tqdm(total=len(modes) * args.n, desc='bench', unit='pred', file=sys.stderr)
    results = bench_policy(
        policy,
        images,
        'put the spoon on the towel',
        key,
        modes=modes,
        warmup=args.warmup,
        n=args.n,
        progress=bar.update,
    )
    bar.close()
    env = environment(args.device)
    report = {
        'environment': env,
        'model': args.model,
        'dtype': args.dtype,
        'quantize': args.quantize,
        'results': as_dict(results),
        'peak_cpu_rss_bytes': peak_rss_bytes(),
        'graph_stats': policy.graph_stats(),
    }
    print(
        f'device {env["device"]} ({env.get("gpu", env["cpu"])}), {args.dtype}, '
        f'quantize={args.quantize}, torch {env["torch"]}, transformers {env["transformers"]}, '
        f'{env["date"]}'
    )
    print(format_table(results))
    if args.pipeline:
        report['pipeline'] = _measure_pipeline(args, key)
    if args.control:
        from openvla_ros.control.benchmark import run as run_control  # noqa: PLC0415

        report['control'] = run_control(1.0)
        print('control core:', json.dumps(report['control']))
    if args.json:
        print(json.dumps(report))
    return 0


def _check_arguments(args: argparse.Namespace) -> tuple[str, ...]:
    """The decode modes to time; refuses unknown ones and --n < 1 before loading anything."""
    modes = tuple(m.strip() for m in args.modes.split(',') if m.strip())
    unknown = sorted(set(modes) - {'reference', 'fast', 'graph'})
    if unknown or not modes:
        raise CliError(f'unknown --modes {unknown}; use reference, fast and/or graph')
    if args.n < 1:
        raise CliError(f'--n must be >= 1, got {args.n}')
    return modes


def _load_policy(args: argparse.Namespace) -> tuple[Any, str]:
    """The policy (random-<size>: random weights built on the device) and its statistics key."""
    from openvla_ros.model.errors import OpenVLAError  # noqa: PLC0415
    from openvla_ros.model.policy import OpenVLAPolicy  # noqa: PLC0415
    from openvla_ros.model.synthetic import random_policy  # noqa: PLC0415

    try:
        if args.model.startswith('random-'):
            policy = random_policy(
                args.model.removeprefix('random-'),
                device=args.device,
                dtype=args.dtype,
                quantize=args.quantize,
            )
        else:
            policy = OpenVLAPolicy.load(
                args.model, device=args.device, dtype=args.dtype, quantize=args.quantize
            )
        return policy, policy.resolve_unnorm_key(args.unnorm_key)
    except (OpenVLAError, ValueError) as exc:
        raise CliError(str(exc)) from exc


def _measure_pipeline(args: argparse.Namespace, key: str) -> dict[str, Any]:
    """What the ROS path adds to the model (a real policy node), printed as one line."""
    from openvla_ros.harness.pipeline_bench import measure_pipeline_overhead  # noqa: PLC0415

    pipe = measure_pipeline_overhead(
        args.model, unnorm_key=key, n=max(10, args.n), device=args.device, dtype=args.dtype
    )
    print(
        f'ROS path ({pipe["image"]}): in the node, frame in -> chunk out adds '
        f'{1e3 * pipe["node_overhead_p50_s"]:.2f} ms at p50 '
        f'(p90 {1e3 * pipe["node_overhead_p90_s"]:.2f} ms) to the model; with the DDS '
        f'transport of frame and chunk, round trip p50 {1e3 * pipe["round_trip_p50_s"]:.1f} '
        f'ms = model {1e3 * pipe["model_p50_s"]:.1f} ms + '
        f'{1e3 * pipe["overhead_p50_s"]:.2f} ms (p90 {1e3 * pipe["overhead_p90_s"]:.2f} ms)'
    )
    return pipe
