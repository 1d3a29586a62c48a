#!/usr/bin/env python
"""Does the policy server's batching pay on this machine? Two measurements, one command:

1. Serving: for each setting, a real ``openvla-ros serve`` process (its own process, as deployed)
   and ROBOTS client threads, each sending STEPS requests one after the other (a robot waits for
   its action); one warm-up round, then REPS timed rounds. Reports the wall time of each round,
   the batch sizes the server formed (``GET /metrics``) and whether every setting answered the
   same actions.
2. The model call alone, in this process: ``predict_batch`` of B frames against B single
   ``predict`` calls (median of REPS, after one untimed call of each).

    .venv/bin/python scripts/remote_batching_bench.py              # tiny random model, CPU
    .venv/bin/python scripts/remote_batching_bench.py --model DIR --device cuda --unnorm-key KEY

Without --model a tiny random OpenVLA (the real architecture, toy widths) is built in a temporary
folder. Prints Markdown tables, and with --json one JSON object last. The figures of
docs/remote.md, "Batching", come from the first command. Speed depends on the machine and its load:
nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import json
import os
from pathlib import Path
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
import numpy as np

from openvla_ros.metrics.machine import host_facts
from openvla_ros.remote.client import OpenVLAClient

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SETTINGS = (
    '--max-batch 1',
    '--max-batch 8 --max-wait-ms 5',
    '--max-batch 8 --max-wait-ms 20',
)
INSTRUCTIONS = ('pick up the cup', 'open the top drawer', 'put the spoon on the towel', 'wipe')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f'the server exited ({process.returncode}):\n{log.read_text()[-3000:]}'
            )
        try:
            if httpx.get(f'{url}/health', timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f'the server was not ready within {timeout_s} s:\n{log.read_text()[-3000:]}')


def _round(url: str, frames: list[np.ndarray], robots: int, steps: int) -> tuple[float, list]:
    """robots threads x steps sequential requests: the wall time and the actions in order."""

    def robot(r: int) -> list[np.ndarray]:
        with OpenVLAClient(url, timeout_s=300, retries=0) as client:
            text = INSTRUCTIONS[r % len(INSTRUCTIONS)]
            return [client.act(frames[r * steps + s], text) for s in range(steps)]

    start = time.perf_counter()
    with ThreadPoolExecutor(robots) as pool:
        actions = list(pool.map(robot, range(robots)))
    return time.perf_counter() - start, [a for per_robot in actions for a in per_robot]


def _batches(url: str) -> dict[str, int]:
    return httpx.get(f'{url}/metrics', timeout=30).json()['batch_size_histogram']


def serve_setting(args: argparse.Namespace, model: str, setting: str, frames: list) -> dict:
    """One server process with ``setting``: warm-up, then args.reps timed rounds."""
    port = _free_port()
    url = f'http://127.0.0.1:{port}'
    argv = [sys.executable, '-m', 'openvla_ros.cli.serve', '--model', model, '--port', str(port)]
    argv += ['--device', args.device, '--unnorm-key', args.unnorm_key, '--log-level', 'warning']
    argv += setting.split()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / 'serve.log'
        with open(log, 'wb') as out:
            env = {**os.environ, 'PYTHONPATH': str(ROOT)}
            process = subprocess.Popen(argv, stdout=out, stderr=out, cwd=ROOT, env=env)
        try:
            _wait_ready(url, process, log, timeout_s=600)
            _round(url, frames, args.robots, args.steps)  # warm-up: first-call costs
            before = _batches(url)
            walls, actions = [], []
            for _ in range(args.reps):
                wall, actions = _round(url, frames, args.robots, args.steps)
                walls.append(wall)
            after = _batches(url)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    batches = {
        size: after[size] - before.get(size, 0)
        for size in after
        if after[size] > before.get(size, 0)
    }
    return {
        'setting': setting,
        'walls_s': [round(w, 4) for w in walls],
        'median_s': round(statistics.median(walls), 4),
        'batches_by_size': batches,
        'requests': sum(int(size) * n for size, n in batches.items()),
        'actions': np.stack(actions),
    }


def model_calls(args: argparse.Namespace, model: str, frames: list) -> list[dict]:
    """predict_batch of B frames vs B single predicts, median of args.reps (ms)."""
    from openvla_ros.model import OpenVLAPolicy  # noqa: PLC0415 - torch only for this part

    dtype = args.dtype or ('bfloat16' if args.device.startswith('cuda') else 'float32')
    policy = OpenVLAPolicy.load(model, device=args.device, dtype=dtype)
    rows = []
    for size in args.batches:
        images = frames[:size]
        texts = [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(size)]

        def batched(images=images, texts=texts) -> None:
            policy.predict_batch(images, texts, args.unnorm_key)

        def singles(images=images, texts=texts) -> None:
            for image, text in zip(images, texts):
                policy.predict(image, text, args.unnorm_key)

        timings: dict[str, list[float]] = {'batched': [], 'singles': []}
        for name, call in (('batched', batched), ('singles', singles)):
            call()  # untimed: first-call costs
            for _ in range(args.reps):
                start = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - start)
        batch_ms = statistics.median(timings['batched']) * 1000
        single_ms = statistics.median(timings['singles']) * 1000
        rows.append(
            {
                'batch': size,
                'predict_batch_ms': round(batch_ms, 1),
                'singles_ms': round(single_ms, 1),
                'speedup': round(single_ms / batch_ms, 2),
            }
        )
    return rows


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='', help='checkpoint directory (default: tiny random)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default=None, help='default: bfloat16 on cuda, float32 on cpu')
    parser.add_argument('--unnorm-key', default='bridge_orig')
    parser.add_argument('--robots', type=int, default=4, help='client threads (default: 4)')
    parser.add_argument('--steps', type=int, default=10, help='requests per robot per round')
    parser.add_argument('--reps', type=int, default=3, help='timed rounds / model calls')
    parser.add_argument('--size', type=int, default=224, help='square frame side in pixels')
    parser.add_argument(
        '--setting',
        action='append',
        help=f'serve flags, repeatable (default: {list(DEFAULT_SETTINGS)})',
    )
    parser.add_argument(
        '--batches', default='1,4,8', help='model-call batch sizes, comma-separated ("" = skip)'
    )
    parser.add_argument('--json', action='store_true', help='print one JSON object last')
    args = parser.parse_args(argv)
    args.settings = args.setting or list(DEFAULT_SETTINGS)
    args.batches = [int(b) for b in args.batches.split(',') if b.strip()]
    return args


def _report(result: dict[str, Any]) -> str:
    lines = [
        f'{result["robots"]} robots x {result["steps"]} sequential requests, '
        f'{result["size"]}x{result["size"]} frames, median of {result["reps"]} rounds '
        f'(model {result["model"]}, {result["device"]}):',
        '',
        '| setting | wall, median [s] | each round [s] | batches by size |',
        '|---|---|---|---|',
    ]
    for row in result['serving']:
        batches = ', '.join(f'{n} x {size}' for size, n in row['batches_by_size'].items())
        walls = ', '.join(f'{w:.2f}' for w in row['walls_s'])
        lines.append(f'| `{row["setting"]}` | {row["median_s"]:.2f} | {walls} | {batches} |')
    lines.append(
        f'\nsame actions in every setting: max |difference| {result["max_action_diff"]:.2e}'
    )
    if result['model_calls']:
        lines += ['', '| batch | predict_batch [ms] | that many predict [ms] | speed-up |']
        lines.append('|---|---|---|---|')
        for row in result['model_calls']:
            lines.append(
                f'| {row["batch"]} | {row["predict_batch_ms"]:.1f} | {row["singles_ms"]:.1f} | '
                f'{row["speedup"]:.2f}x |'
            )
    facts = result['machine']
    load = result['load_average']
    lines.append(
        f'\nmachine: {facts["cpu"]}, {facts["nproc"]} CPUs; {facts["date"]}; load average '
        f'(1, 5, 15 min) before {load["before"]}, after {load["after"]}'
    )
    lines.append(f'command: {result["command"]}')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    load_before = [round(x, 2) for x in os.getloadavg()]  # other users of the CPUs
    rng = np.random.default_rng(0)
    count = max(args.robots * args.steps, *args.batches, 1)
    frames = [
        rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(count)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if not model:
            from openvla_ros.model.tiny import make_tiny_model  # noqa: PLC0415

            model = str(make_tiny_model(Path(tmp) / 'tiny', seed=0))
        serving = [serve_setting(args, model, setting, frames) for setting in args.settings]
        calls = model_calls(args, model, frames) if args.batches else []
    first = serving[0]['actions']
    diff = max(float(np.max(np.abs(row.pop('actions') - first))) for row in serving)
    result = {
        'model': args.model or 'tiny random (seed 0)',
        'device': args.device,
        'robots': args.robots,
        'steps': args.steps,
        'reps': args.reps,
        'size': args.size,
        'serving': serving,
        'max_action_diff': diff,
        'model_calls': calls,
        'machine': host_facts(),
        'command': shlex.join(
            [f'scripts/{Path(__file__).name}', *(sys.argv[1:] if argv is None else argv)]
        ),
        'load_average': {'before': load_before, 'after': [round(x, 2) for x in os.getloadavg()]},
    }
    print(_report(result))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
