"""Throughput of the control core on this machine.

Usage::

    python -m openvla_ros.control.benchmark            # human-readable
    python -m openvla_ros.control.benchmark --json     # one JSON object on stdout
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import json
import math
import sys
import time

import numpy as np

from openvla_ros.control.config import LimiterConfig, SafetyConfig
from openvla_ros.control.kinematics import get_kinematics
from openvla_ros.control.rate_limiter import ActionChunkData, ActionRateLimiter
from openvla_ros.control.safety import SafetyMonitor
from openvla_ros.metrics.machine import host_facts

__all__ = ['main', 'run']


def _rate(body: Callable[[int], None], seconds: float) -> float:
    """Calls per second of ``body(i)`` over about ``seconds`` of wall time."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        body(count)
        count += 1
        if (count & 15) == 0 and time.perf_counter() >= deadline:
            break
    return count / (time.perf_counter() - start)


def run(seconds: float = 1.0) -> dict:
    """Measure limiter steps/s, monitor filters/s and IK solves/s (wx250s, panda).

    Args:
        seconds: wall time per measurement.

    Returns:
        ``{'limiter_steps_per_s', 'monitor_filters_per_s', 'ik_wx250s_solves_per_s',
        'ik_panda_solves_per_s', 'machine': {...}}``.
    """
    start_pose = np.eye(4)
    start_pose[:3, 3] = [0.3, -0.09, 0.26]
    config = LimiterConfig(control_rate=50.0)
    limiter = ActionRateLimiter(config)
    limiter.reset(start_pose, 1.0)
    rng = np.random.default_rng(0)
    chunk_actions = rng.uniform(-0.02, 0.02, size=(4, 7))
    chunk_actions[:, 6] = 1.0

    def limiter_step(i: int) -> None:
        now = i * config.period
        if i % 10 == 0:
            limiter.submit(ActionChunkData(stamp=now, dt=0.2, actions=chunk_actions), now)
        limiter.step(now)

    monitor = SafetyMonitor(
        SafetyConfig(workspace_low=(0.1, -0.2, -0.01), workspace_high=(0.45, 0.25, 0.30))
    )
    monitor.set_reference(start_pose, 1.0)
    targets = []
    for k in range(64):
        target = start_pose.copy()
        target[:3, 3] += 0.004 * np.sin(np.arange(3) + k)
        targets.append(target)

    def monitor_filter(i: int) -> None:
        now = i * 0.02
        monitor.on_image(now)
        monitor.on_joint_state(None, now)
        monitor.filter(targets[i % 64], 1.0, now)

    results: dict = {
        'limiter_steps_per_s': _rate(limiter_step, seconds),
        'monitor_filters_per_s': _rate(monitor_filter, seconds),
    }
    for name in ('wx250s', 'panda'):
        kin = get_kinematics(name)
        samples = []
        for _ in range(64):
            q = rng.uniform(kin.lower, kin.upper)
            seed = np.clip(q + rng.normal(0.0, 0.05, kin.dof), kin.lower, kin.upper)
            samples.append((kin.fk(q), seed))

        def solve(i: int, kin=kin, samples=samples) -> None:
            target, seed = samples[i % len(samples)]
            kin.ik(target, seed)

        results[f'ik_{name}_solves_per_s'] = _rate(solve, seconds)
    results['machine'] = {**host_facts(), 'seconds_per_measurement': seconds}
    return results


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--seconds', type=float, default=1.0, help='wall time per measurement [s]')
    args = parser.parse_args(argv)
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        print(f'error: --seconds must be > 0, got {args.seconds}', file=sys.stderr)
        return 1
    results = run(args.seconds)
    if args.json:
        print(json.dumps(results))
        return 0
    for key, value in results.items():
        if key != 'machine':
            print(f'{key:28s} {value:12.0f}')
    print(f'machine: {results["machine"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
