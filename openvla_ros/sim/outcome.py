"""Why an episode failed: what the gripper did with the object, traced at every control tick.

A success rate says how often a policy fails; this says where: it never touched the object, touched
it without lifting it, lifted it short of the task's height, or carried it without putting it on
the target. That is the first thing to look at when a learned policy stalls, and it comes from the
simulator's state, as the success predicate does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
import math
from typing import Any, Protocol

import numpy as np

from openvla_ros.sim.tasks import SceneState, Task

__all__ = ['EpisodeTrace', 'LIFTED_M', 'OUTCOMES', 'count_failures', 'describe_failures']

#: In pipeline order: a failure is named after the first stage the episode did not get through.
OUTCOMES = ('success', 'missed', 'not_lifted', 'lifted_short', 'not_placed')

#: [m] a rise of the picked object above its resting height that counts as lifted.
LIFTED_M = 0.01

#: A grasp: the measured opening falls from above OPEN to below CLOSED (a 3 cm block between the
#: WidowX's fingers reads about 0, so a held and an empty grasp both count).
OPEN, CLOSED = 0.6, 0.25


class TracedScene(SceneState, Protocol):
    """What the trace reads: the success predicate's view plus the gripper's TCP and opening."""

    def ee_pose(self) -> np.ndarray:
        """TCP pose (4x4) in the base frame."""

    def gripper_opening(self) -> float:
        """Measured opening, 0 (closed) .. 1 (open)."""


@dataclass
class EpisodeTrace:
    """Accumulates, tick by tick, how close the episode came to each stage of its task.

    Called as a predicate (``SimNode.watch(trace)``): it updates the trace, then returns the task's
    success, so the tracing costs no second pass over the physics.

    Attributes:
        task: the episode's task.
        closest_m: closest distance of the TCP to the picked object's centre.
        touched: the fingers touched the picked object.
        touched_others: other objects the fingers touched (a wrong-object grasp shows here).
        max_rise_m: highest rise of the picked object above its height at the first tick.
        place_error_m: place tasks: horizontal distance of the picked object from the place
            target at the last tick (NaN for lifts).
        grasps: times the fingers closed (from open to closed); more than one is a retry.
        ticks: control ticks traced.
    """

    task: Task
    closest_m: float = math.inf
    touched: bool = False
    touched_others: set[str] = field(default_factory=set)
    max_rise_m: float = 0.0
    place_error_m: float = math.nan
    grasps: int = 0
    ticks: int = 0
    _rest_z: float = math.nan
    _open: bool = False

    def __call__(self, world: TracedScene) -> bool:
        self.update(world)
        return self.task.success(world)

    def update(self, world: TracedScene) -> None:
        """Adds one control tick of the simulator's state."""
        poses = world.object_poses()
        pick = poses[self.task.pick][:3, 3]
        if math.isnan(self._rest_z):
            self._rest_z = float(pick[2])
        tcp = world.ee_pose()[:3, 3]
        self.closest_m = min(self.closest_m, float(np.linalg.norm(tcp - pick)))
        self.touched = self.touched or world.touching(self.task.pick, 'gripper')
        for name in self.task.objects:
            if name != self.task.pick and name not in self.touched_others:
                if world.touching(name, 'gripper'):
                    self.touched_others.add(name)
        self.max_rise_m = max(self.max_rise_m, float(pick[2]) - self._rest_z)
        target = self.task.place_target(poses)
        if target is not None:
            self.place_error_m = float(np.linalg.norm(pick[:2] - target[:2]))
        opening = world.gripper_opening()
        if self._open and opening < CLOSED:
            self.grasps += 1
        self._open = opening > OPEN or (self._open and opening >= CLOSED)
        self.ticks += 1

    def outcome(self, success: bool) -> str:
        """The episode's outcome, one of `OUTCOMES`."""
        if success:
            return 'success'
        if not self.touched:
            return 'missed'
        if self.max_rise_m < LIFTED_M:
            return 'not_lifted'
        if self.task.place is None:
            return 'lifted_short'
        return 'not_placed'

    def summary(self, success: bool) -> dict[str, Any]:
        """The outcome and the measures behind it, rounded to the millimetre (JSON-ready)."""

        def mm(value: float) -> float | None:
            return None if not math.isfinite(value) else round(value, 3)

        return {
            'outcome': self.outcome(success),
            'closest_m': mm(self.closest_m),
            'max_rise_m': mm(self.max_rise_m),
            'touched_others': sorted(self.touched_others),
            'place_error_m': mm(self.place_error_m),
            'grasps': self.grasps,
        }


def count_failures(outcomes: Iterable[str]) -> dict[str, int]:
    """Failed episodes by outcome, in pipeline order (successes and absent outcomes left out)."""
    counts = Counter(outcomes)
    return {name: counts[name] for name in OUTCOMES[1:] if counts[name]}


def describe_failures(counts: dict[str, int]) -> str:
    """'3 missed, 1 not_lifted' ('' when nothing failed)."""
    return ', '.join(f'{n} {name}' for name, n in counts.items())
