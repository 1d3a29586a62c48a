"""Closed-loop helpers for the sim tests: expert -> delta -> IK -> SimWorld, no ROS."""

from __future__ import annotations

from dataclasses import dataclass
import os

os.environ.setdefault('MUJOCO_GL', 'egl')


from openvla_ros.sim.expert import apply_action, ScriptedExpert  # noqa: E402
from openvla_ros.sim.world import SimWorld  # noqa: E402

POLICY_DT = 0.2  # 5 Hz, like OpenVLA's WidowX evaluation


def get_control_kinematics(robot: str):
    """The control core's kinematics of ``robot`` (the same IK the adapters use)."""
    from openvla_ros.control.kinematics import get_kinematics  # noqa: PLC0415

    return get_kinematics(robot)


@dataclass
class RolloutResult:
    success: bool
    steps: int
    phases: list[str]
    ik_failures: int


def run_expert_episode(
    world: SimWorld,
    expert: ScriptedExpert,
    seed: int,
    max_steps: int | None = None,
    ik_dt: float | None = POLICY_DT,
    plan_on_measured: bool = False,
    miss: tuple[float, float] | None = None,
) -> RolloutResult:
    """One 5 Hz episode: apply each delta to the previous target, IK, step, check success.

    Like the robot pipeline, the IK rejects solutions faster than the joint velocity limit over
    one policy period (``ik_dt``; None disables that check) and keeps the last joints then.
    With ``plan_on_measured`` the expert plans on the measured pose (FK of the joint positions,
    which lag the commanded ones) while its deltas still apply to the commanded target.
    ``miss``: aim the first grasp this far (xy, m) beside the object on purpose.
    """
    kin = get_control_kinematics(world.robot)
    world.reset(seed=seed)
    q_cmd = world.arm_targets
    target = kin.fk(q_cmd)
    expert.reset(world, target)
    if miss is not None:
        expert.miss_next_grasp(miss)
    task = world.task
    limit = task.max_steps if max_steps is None else max_steps
    phases, ik_failures = [], 0
    for step in range(1, limit + 1):
        planned_on = kin.fk(world.arm_q()) if plan_on_measured else target
        action = expert.next_chunk(world.object_poses(), planned_on)[0]
        phases.append(expert.phase)
        target = apply_action(target, action)
        result = kin.ik(target, q_cmd, dt=ik_dt)
        if result.ok:
            q_cmd = result.q
            world.set_arm_targets(q_cmd)
        else:
            ik_failures += 1
        world.set_gripper(float(action[6]))
        world.step(POLICY_DT)
        if task.success(world):
            return RolloutResult(True, step, phases, ik_failures)
    return RolloutResult(False, limit, phases, ik_failures)
