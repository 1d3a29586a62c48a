"""Simulated manipulation tasks: objects, seeded initial layout, success predicate, step limit.

Tasks (instruction strings chosen to read like BridgeData V2 language annotations):

| name | robots | instruction | success |
|---|---|---|---|
| carrot_on_plate | wx250s | put the carrot on the plate | carrot centre within 6.5 cm of the plate centre (xy), touching the plate, not touching the fingers, at most 2 cm above resting height |
| spoon_on_towel | wx250s | put the spoon on the towel | spoon centre inside the towel square (xy, 5 mm margin), touching the towel, not touching the fingers |
| lift_block | wx250s, panda, fr3 | pick up the red block | the red block's bottom is more than 5 cm above the table |

The step limit is 60 policy steps (OpenVLA's WidowX evaluation: 5 Hz, 60 steps).
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from openvla_ros.sim.scene import object_spec, robot_spec

TABLE_Z = 0.0

# object footprint radii [m] used to keep sampled objects apart
_FOOTPRINT = {'carrot': 0.048, 'plate': 0.076, 'spoon': 0.075, 'towel': 0.113, 'block': 0.025}


class SceneState(Protocol):
    """What a success predicate reads from a simulator (``SimWorld`` provides it).

    A protocol rather than an import of ``SimWorld``: the world builds its scene from a task, so
    tasks must not depend on the world (no import cycle).
    """

    def object_poses(self) -> dict[str, np.ndarray]:
        """4x4 base-frame pose of every object."""

    def touching(self, body_a: str, body_b: str) -> bool:
        """Whether bodies ``body_a`` and ``body_b`` are in contact ('gripper': the fingers)."""


@dataclass(frozen=True)
class Task:
    """One task for one robot.

    Attributes:
        name: registry name.
        robot: 'wx250s', 'panda' or 'fr3'.
        instruction: the language instruction for the policy.
        objects: every object in the scene (the first is the one to pick).
        pick: object the expert grasps.
        place: object to put ``pick`` on, or None for a lift task.
        max_steps: policy-step limit of an episode.
        lift_height: lift tasks: required height of the object's bottom above the table [m].
    """

    name: str
    robot: str
    instruction: str
    objects: tuple[str, ...]
    pick: str
    place: str | None
    max_steps: int = 60
    lift_height: float = 0.05

    def sample_object_poses(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random resting poses of all objects, deterministic for the generator's seed.

        Positions are drawn in the robot's reachable table region with rejection sampling so
        footprints do not overlap; yaw is uniform for carrots, spoons and blocks.
        """
        x0, x1, y0, y1 = robot_spec(self.robot).object_region
        # place the big flat things first, they are the hardest to fit
        order = sorted(self.objects, key=lambda n: -self._footprint(n))
        for _ in range(200):  # restart the whole layout when an object does not fit
            placed: list[tuple[np.ndarray, float]] = []
            for name in order:
                r = self._footprint(name)
                for _ in range(50):
                    xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
                    if all(np.linalg.norm(xy - p) >= r + q + 0.01 for p, q in placed):
                        placed.append((xy, r))
                        break
                else:
                    break
            if len(placed) == len(order):
                break
        else:  # pragma: no cover - the regions are large enough for these object sets
            raise RuntimeError(f'cannot place the objects of task {self.name}')
        poses: dict[str, np.ndarray] = {}
        for name, (xy, _) in zip(order, placed):
            spec = object_spec(name, self.robot)
            if spec.kind in ('plate', 'towel'):
                yaw = rng.uniform(-0.3, 0.3)
            else:
                yaw = rng.uniform(-math.pi, math.pi)
            pose = np.eye(4)
            pose[:3, :3] = Rotation.from_euler('z', yaw).as_matrix()
            pose[:3, 3] = [xy[0], xy[1], TABLE_Z + spec.half_height + 0.0005]
            poses[name] = pose
        return {name: poses[name] for name in self.objects}

    def _footprint(self, name: str) -> float:
        kind = object_spec(name, self.robot).kind
        r = _FOOTPRINT[kind]
        if kind == 'block' and self.robot != 'wx250s':
            r = 0.035
        return r

    def success(self, world: SceneState) -> bool:
        """The success predicate, computed from the simulator state."""
        poses = world.object_poses()
        obj = poses[self.pick]
        spec = object_spec(self.pick, self.robot)
        if self.place is None:
            return bool(obj[2, 3] - spec.half_height > TABLE_Z + self.lift_height)
        if world.touching(self.pick, 'gripper') or not world.touching(self.pick, self.place):
            return False
        support = poses[self.place]
        sspec = object_spec(self.place, self.robot)
        rel = support[:3, :3].T @ (obj[:3, 3] - support[:3, 3])
        top = support[2, 3] + sspec.half_height
        if obj[2, 3] > top + spec.half_height + 0.02:
            return False
        if sspec.kind == 'plate':
            return bool(math.hypot(rel[0], rel[1]) < sspec.size[0] - 0.01)
        half_x, half_y = sspec.size[0], sspec.size[1]
        return bool(abs(rel[0]) < half_x - 0.005 and abs(rel[1]) < half_y - 0.005)

    def place_target(self, object_poses: dict[str, np.ndarray]) -> np.ndarray | None:
        """Where the picked object's centre should end up (base frame xyz), None for lifts."""
        if self.place is None:
            return None
        support = object_poses[self.place]
        top = support[2, 3] + object_spec(self.place, self.robot).half_height
        return np.array(
            [support[0, 3], support[1, 3], top + object_spec(self.pick, self.robot).half_height]
        )


_TASKS = {
    'carrot_on_plate': dict(
        instruction='put the carrot on the plate',
        objects=('carrot', 'plate', 'green_block'),
        pick='carrot',
        place='plate',
        robots=('wx250s',),
    ),
    'spoon_on_towel': dict(
        instruction='put the spoon on the towel',
        objects=('spoon', 'towel', 'yellow_block'),
        pick='spoon',
        place='towel',
        robots=('wx250s',),
    ),
    'lift_block': dict(
        instruction='pick up the red block',
        objects=('red_block', 'green_block', 'blue_block'),
        pick='red_block',
        place=None,
        robots=('wx250s', 'panda', 'fr3'),
    ),
}


def task_names(robot: str | None = None) -> list[str]:
    """Sorted task names, optionally only those available for ``robot``."""
    return sorted(n for n, t in _TASKS.items() if robot is None or robot in t['robots'])


def get_task(name: str, robot: str = 'wx250s') -> Task:
    """Return task ``name`` for ``robot``.

    Raises:
        ValueError: unknown task, or the task is not defined for this robot (lists known ones).
    """
    robot_spec(robot)  # validates the robot name
    entry = _TASKS.get(name)
    if entry is None or robot not in entry['robots']:
        raise ValueError(f'unknown task {name!r} for robot {robot!r}; known: {task_names(robot)}')
    return Task(
        name=name,
        robot=robot,
        instruction=entry['instruction'],
        objects=entry['objects'],
        pick=entry['pick'],
        place=entry['place'],
    )
