"""One episode of the full stack in the simulator: the engine of ``openvla-ros demo`` and
``evaluate``.

The graph is the launch files' graph (``openvla_ros.bringup.graph``) with ``sim:=true``, run in
this process by ``openvla_ros.harness.runner``. The episode sends the task's instruction, watches
the
simulator's success predicate, and returns what happened; nothing here imports rclpy directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import math
from pathlib import Path
import time
from typing import Any

from openvla_ros.bringup.graph import GraphArgs, USE_SIM_TIME
from openvla_ros.bringup.profiles import load_profile
from openvla_ros.msgio.topics import CLOCK, robot_joint_states

__all__ = [
    'DEFAULT_TASKS',
    'RolloutConfig',
    'RolloutResult',
    'policy_rate',
    'rollout_paths',
    'run_rollout',
]

DEFAULT_TASKS = {
    'widowx_bridge': 'carrot_on_plate',
    'franka_tabletop': 'lift_block',
    'franka_droid': 'lift_block',
}


@dataclass(frozen=True)
class RolloutConfig:
    """What to run. ``duration`` 0 means the task's step limit (max_steps / policy rate)."""

    profile: str = 'widowx_bridge'
    policy: str = 'scripted'
    task: str = ''
    seed: int = 0
    duration: float = 0.0
    stop_on_success: bool = True
    model: str = ''
    device: str = 'cpu'
    dtype: str = 'float32'
    quantize: str = 'none'
    unnorm_key: str = ''
    adapter: str = ''
    server_url: str = 'http://127.0.0.1:8000'
    instruction: str = ''
    bag: str = ''
    image_size: tuple[int, int] = (240, 320)
    camera_rate: float = 10.0
    frame_stride: int = 1
    place_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    noise: tuple[float, float] = (0.0, 0.0)  # scripted: DART noise std (translation m, rot rad)
    noise_probability: float = 0.5
    noise_seed: int = 0
    # scripted, planned on the measured pose: share of episodes whose first grasp misses on
    # purpose by a distance in miss_distance [m], then recovers (those ticks have no label)
    miss_probability: float = 0.0
    miss_distance: tuple[float, float] = (0.025, 0.04)
    # scripted: the expert's largest step per tick (translation m per axis, rotation rad)
    expert_speed: tuple[float, float] = (0.05, 0.15)
    expert_plan_from: str = 'target'  # scripted: 'target' (open loop) or 'measured'
    expert_gain: float = 0.4  # scripted, planned on the measured pose: share of the way per tick
    startup_timeout: float = 120.0
    # simulated seconds per wall-clock second at most (sim_node); 0: as fast as the graph keeps up
    max_real_time_factor: float = 1.0
    # None: a private domain (openvla_ros.harness.runner.private_domain_id)
    domain_id: int | None = None

    @property
    def task_name(self) -> str:
        return self.task or DEFAULT_TASKS[self.profile]


@dataclass
class RolloutResult:
    """What one episode did."""

    task: str
    instruction: str
    seed: int
    success: bool
    time_to_success: float  # [s, simulated] from the instruction; NaN when it did not succeed
    duration: float  # [s, simulated] the episode ran
    passed: int
    clipped: int
    rejected: int
    chunks: int
    data: Any = field(repr=False, default=None)  # RolloutNode.data
    bag: str = ''
    real_time_factor: float = math.nan  # simulated seconds per wall-clock second
    lockstep_timeouts: int = 0  # control ticks the simulator stopped waiting for
    holds: int = 0  # times the safety monitor went into HOLD (watchdogs too) after the instruction
    # why it failed (openvla_ros.sim.outcome.EpisodeTrace.summary): outcome name and its measures
    outcome: dict[str, Any] = field(default_factory=dict)


def _overrides(cfg: RolloutConfig, robot: str) -> dict[str, dict[str, Any]]:
    height, width = cfg.image_size
    out: dict[str, dict[str, Any]] = {
        'sim': {
            'seed': int(cfg.seed),
            'image_height': int(height),
            'image_width': int(width),
            'camera_rate': float(cfg.camera_rate),
            'robot': robot,
            'max_real_time_factor': float(cfg.max_real_time_factor),
        },
    }
    if cfg.policy == 'scripted':
        out['scripted_policy'] = {
            'task': cfg.task_name,
            'place_offset': list(cfg.place_offset),
            'noise_translation': float(cfg.noise[0]),
            'noise_rotation': float(cfg.noise[1]),
            'noise_probability': float(cfg.noise_probability),
            'noise_seed': int(cfg.noise_seed),
            'miss_probability': float(cfg.miss_probability),
            'miss_distance': [float(v) for v in cfg.miss_distance],
            'max_translation': float(cfg.expert_speed[0]),
            'max_rotation': float(cfg.expert_speed[1]),
            'plan_from': cfg.expert_plan_from,
            'gain': float(cfg.expert_gain),
        }
    else:
        policy = {
            'device': cfg.device,
            'dtype': cfg.dtype,
            'quantize': cfg.quantize,
            'max_image_age': 2.0,
        }
        for key in ('model', 'unnorm_key', 'adapter'):
            if getattr(cfg, key):
                policy[key] = getattr(cfg, key)
        out['policy_node'] = policy
    return out


def policy_rate(profile: Any, policy: str) -> float:
    """[Hz] the actions' rate in an episode of ``policy``: the profile's policy node's, and 5
    Hz for the scripted expert (OpenVLA's WidowX evaluation rate), on every profile."""
    if policy == 'scripted':
        return 5.0
    return float(profile.node_params('policy_node').get('policy_rate', 5.0))


def run_rollout(
    cfg: RolloutConfig, progress: Callable[[float, float], None] | None = None
) -> RolloutResult:
    """Runs one episode and returns its result (the runner is always stopped).

    Args:
        cfg: the episode.
        progress: called as progress(elapsed, total) about ten times a second.

    Raises:
        RuntimeError: the stack did not come up (no joint states, no camera, the policy failed to
            load); the message says which.
    """
    from openvla_ros.harness.rollout_node import RolloutNode  # noqa: PLC0415 - rclpy only here
    from openvla_ros.harness.runner import GraphRunner, private_domain_id, to_parameters  # noqa: PLC0415
    from openvla_ros.sim.outcome import EpisodeTrace  # noqa: PLC0415
    from openvla_ros.sim.tasks import get_task  # noqa: PLC0415

    profile = load_profile(cfg.profile)
    robot = str(profile.get('robot'))
    task = get_task(cfg.task_name, robot)
    instruction = cfg.instruction or task.instruction
    rate = policy_rate(profile, cfg.policy)
    total = cfg.duration or task.max_steps / rate
    args = GraphArgs(
        profile=cfg.profile, sim=True, policy=cfg.policy, task=task.name, server_url=cfg.server_url
    )
    domain = private_domain_id() if cfg.domain_id is None else cfg.domain_id
    runner = GraphRunner(args, overrides=_overrides(cfg, robot), profile=profile, domain_id=domain)
    runner.start()
    try:
        episode = runner.add_node(
            RolloutNode,
            'episode',
            robot=robot,
            joint_states=robot_joint_states(robot),
            frame_stride=cfg.frame_stride,
            bag=cfg.bag or None,
            parameter_overrides=to_parameters({USE_SIM_TIME: True}),
        )
        _wait_until_ready(runner, episode, cfg)
        # The episode runs in simulated time (the simulator's clock): a loaded machine makes it
        # slower, not different. Polling here is wall-clock and only decides when we look.
        sim = runner.nodes['sim']
        _wait_for_instruction_slot(sim, 1.0 / rate)
        before = episode.data.status  # safety counts of the start-up are not the episode's
        first_state = len(episode.data.states)
        episode.instruct(instruction)
        start, wall_start = sim.sim_time, time.monotonic()
        trace = EpisodeTrace(task)
        sim.watch(trace)  # traced, and success checked, by the simulator at every control tick
        success_at = math.nan
        last_advance, last_time = wall_start, start
        while (elapsed := sim.sim_time - start) < total:
            if progress is not None:
                progress(elapsed, total)
            if math.isnan(success_at) and not math.isnan(sim.watch_time):
                success_at = sim.watch_time - start
                if cfg.stop_on_success:
                    break
            if sim.sim_time != last_time:
                last_advance, last_time = time.monotonic(), sim.sim_time
            elif time.monotonic() - last_advance > cfg.startup_timeout:
                raise RuntimeError(
                    f'the simulated clock stopped at {last_time:.2f} s for '
                    f'{cfg.startup_timeout:.0f} s of wall-clock time'
                )
            time.sleep(0.02)
        duration = sim.sim_time - start
        wall = time.monotonic() - wall_start
        sim.watch(None)  # under the physics lock: the trace is final from here
        _check_one_clock(runner)
        episode.instruct('')
        if progress is not None:
            progress(total, total)
        status = episode.data.status
        success = not math.isnan(success_at)
        return RolloutResult(
            task=task.name,
            instruction=instruction,
            seed=cfg.seed,
            success=success,
            time_to_success=success_at,
            duration=duration,
            passed=_since(status, before, 'passed'),
            clipped=_since(status, before, 'clipped'),
            rejected=_since(status, before, 'rejected'),
            chunks=episode.data.chunks,
            data=episode.data,
            bag=cfg.bag,
            real_time_factor=duration / wall if wall > 0 else math.nan,
            lockstep_timeouts=int(sim.lockstep_timeouts),
            holds=_holds(episode.data.states[max(0, first_state - 1) :]),
            outcome=trace.summary(success),
        )
    finally:
        runner.stop()


def _holds(states: list[int]) -> int:
    """Transitions into HOLD in a sequence of SafetyStatus states."""
    from openvla_ros.control import SafetyState  # noqa: PLC0415

    hold = int(SafetyState.HOLD)
    return sum(1 for a, b in zip(states, states[1:]) if b == hold and a != hold)


def _since(status, before, key: str) -> int:
    """A safety monitor counter's growth since ``before`` (both SafetyStatus or None)."""
    end = int(getattr(status, key)) if status is not None else 0
    start = int(getattr(before, key)) if before is not None else 0
    return end - start if end >= start else end  # a restarted monitor counts from zero


def _wait_for_instruction_slot(sim, period: float, settle: float = 1.0) -> None:
    """Waits (simulated time) until the objects have settled and a policy tick has just passed:
    the instruction then reaches the policy well before its next tick, in every run alike."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        t = sim.sim_time
        if t >= settle and 0.1 * period <= t % period <= 0.4 * period:
            return
        time.sleep(0.002)


def _check_one_clock(runner) -> None:
    """Two simulators on one DDS domain would drive each other's nodes with two clocks."""
    clocks = runner.nodes['sim'].count_publishers(CLOCK)
    if clocks > 1:
        raise RuntimeError(
            f'{clocks - 1} other /clock publisher(s) on ROS_DOMAIN_ID {runner.domain_id} '
            '(another simulator?): run with another --domain-id'
        )


def _wait_until_ready(runner, episode, cfg: RolloutConfig) -> None:
    deadline = time.monotonic() + cfg.startup_timeout
    policy = runner.nodes.get('policy_node')
    while time.monotonic() < deadline:
        have_state = bool(episode.data.reached)
        have_frame = bool(episode.data.frames) or cfg.camera_rate <= 0
        loaded = policy is None or policy.ready
        if policy is not None and not loaded and policy.load_failed:
            raise RuntimeError(policy.message)
        _check_one_clock(runner)
        if have_state and have_frame and loaded:
            return
        time.sleep(0.05)
    missing = [
        name
        for name, ok in (
            ('joint states', bool(episode.data.reached)),
            ('camera frames', bool(episode.data.frames)),
            ('a loaded policy', policy is None or policy.ready),
        )
        if not ok
    ]
    raise RuntimeError(
        f'the stack did not come up within {cfg.startup_timeout:.0f} s: no '
        + ', no '.join(missing)
    )


def rollout_paths(out_dir: str | Path, name: str) -> dict[str, Path]:
    """Where a report's files go."""
    out = Path(out_dir)
    return {'video': out / f'{name}.mp4', 'plot': out / f'{name}.png', 'bag': out / f'{name}_bag'}
