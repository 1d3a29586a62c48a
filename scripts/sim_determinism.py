#!/usr/bin/env python3
"""Replays one simulated episode, alone and beside a CPU hog, and prints how far apart the
end-effector trajectories are (issue 20: an episode is a function of profile, task and seed).

    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST MUJOCO_GL=egl .venv/bin/python \
        scripts/sim_determinism.py --runs 12

Run i (from 1) has the hog when i is even. Deviations are in simulated time, which starts at 0
in every run: the largest distance between the run's reached positions and the first run's over
[1, 6) s. test/nodes/test_sim_time.py uses the same functions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np


def episode(seed: int = 4242, profile: str = 'franka_tabletop', task: str = 'lift_block'):
    """One scripted-expert episode of 6 simulated seconds through the whole graph."""
    from openvla_ros.harness.rollouts import RolloutConfig, run_rollout  # noqa: PLC0415

    cfg = RolloutConfig(
        profile=profile,
        task=task,
        seed=seed,
        duration=6.0,
        stop_on_success=False,
        camera_rate=10.0,
        frame_stride=10_000,
    )
    return run_rollout(cfg)


def trajectory(result) -> np.ndarray:
    """(t, x, y, z) of the reached end-effector positions, t in simulated seconds.

    Simulated time starts at 0 in every run and the policy acts at its ticks, so the same
    episode is the same function of simulated time. (Aligning runs on their first millimetre of
    motion instead shifted one by a whole tick whenever two arms a micrometre apart crossed that
    threshold a tick apart, which reads as 5-7 mm.)
    """
    track = np.array([[t, *p] for t, p in result.data.reached])
    moved = np.linalg.norm(track[:, 1:] - track[0, 1:], axis=1) > 1e-3
    if not moved.any():
        raise AssertionError('the arm never moved')
    return track


def deviation(a: np.ndarray, b: np.ndarray, start: float = 1.0, end: float = 6.0) -> float:
    """[m] Largest distance between two trajectories over [start, end) of simulated time."""
    covered = a[0, 0] <= start and b[0, 0] <= start and min(a[-1, 0], b[-1, 0]) >= end - 0.02
    if not covered:
        raise AssertionError(f'the trajectories do not cover [{start}, {end}) s')
    times = np.arange(start, end, 0.02)
    pa = np.stack([np.interp(times, a[:, 0], a[:, k]) for k in (1, 2, 3)], axis=1)
    pb = np.stack([np.interp(times, b[:, 0], b[:, k]) for k in (1, 2, 3)], axis=1)
    return float(np.max(np.linalg.norm(pa - pb, axis=1)))


class CpuHog:
    """A bounded busy loop in one process per core (stopped on exit, ends by itself anyway)."""

    def __init__(self, seconds: float = 120.0) -> None:
        code = (
            'import time\n'
            f'end = time.monotonic() + {seconds}\n'
            'while time.monotonic() < end:\n'
            '    pass\n'
        )
        self.procs = [
            subprocess.Popen([sys.executable, '-c', code]) for _ in range(os.cpu_count() or 2)
        ]

    def __enter__(self) -> CpuHog:
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=12, help='runs after the first')
    parser.add_argument('--seed', type=int, default=4242)
    parser.add_argument('--profile', default='franka_tabletop')
    parser.add_argument('--task', default='lift_block')
    args = parser.parse_args(argv)
    first = episode(args.seed, args.profile, args.task)
    reference = trajectory(first)
    print(f'run 0: time to success {first.time_to_success:.2f} s', flush=True)
    worst = 0.0
    for i in range(1, args.runs + 1):
        hog = i % 2 == 0
        started = time.monotonic()
        if hog:
            with CpuHog():
                result = episode(args.seed, args.profile, args.task)
        else:
            result = episode(args.seed, args.profile, args.task)
        apart = deviation(reference, trajectory(result))
        worst = max(worst, apart)
        print(
            f'run {i}: {"beside a CPU hog" if hog else "alone"}: {apart * 1e3:.6f} mm from run 0, '
            f'time to success {result.time_to_success:.2f} s, real-time factor '
            f'{result.real_time_factor:.2f}, {time.monotonic() - started:.0f} s',
            flush=True,
        )
    print(f'largest deviation over {args.runs} runs: {worst * 1e3:.6f} mm')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
