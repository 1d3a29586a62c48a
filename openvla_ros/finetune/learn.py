"""The whole learning loop on the simulator: demonstrations -> dataset -> training -> evaluation.

`run_learn(LearnConfig(...))` is the engine of `openvla-ros learn`. Every episode (demonstration
or evaluation) runs through the full ROS stack in this process (`openvla_ros.harness.rollouts`),
real time. Stages and what they leave in OUT:

1. demos: `bags/demo_seed<S>/` MCAP bags of the scripted expert with DART noise on its executed
   actions (clean labels on `/openvla/expert_action`); only successful episodes are used. The
   expert plans each tick on the measured pose (`expert_plan_from`), the pose its frames show.
2. dataset: `dataset/` (`openvla-ros record` format) built from the labels.
3. base: `base/`, a randomly initialised small OpenVLA (`small_model.py`); with
   `vision_steps` > 0 its ViTs and projector are first taught to find the task's objects and
   the gripper on views of the demonstration scenes (`vision_pretrain.py`).
4. train: `train/`, full-parameter training with step checkpoints (`finetune --full`).
5. select: each kept checkpoint is exported (`train/export_step_N/`) and run on the selection
   seeds; the best one becomes `best/`, an ordinary OpenVLA checkpoint directory.
6. evaluate: `best/` on the evaluation seeds, never used before.
7. report: `report.json`, `report.md`, `learning.png`.

Seed ranges are disjoint and recorded: demonstrations `demo_seed + i`, selection
`select_seed + i`, evaluation `eval_seed + i`. `learn.json` holds the progress; running the same
command again resumes where it stopped (finished bags are kept, a half-written one is redone,
training resumes from its last checkpoint, finished evaluations are not rerun).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
import json
import logging
from pathlib import Path
import shutil
import statistics
import time
from typing import Any

__all__ = ['LearnConfig', 'run_learn', 'seed_ranges']

logger = logging.getLogger(__name__)

STATE_NAME = 'learn.json'
#: JPEG quality of the dataset frames: a 224 px simulator frame is about 7 KB (10.7 KB at 95),
#: so a few hundred demonstrations fit the 64 MiB a lent GPU machine receives.
DATASET_JPEG_QUALITY = 90
#: The stages `stop_after` may name ('' runs them all).
STAGES = ('', 'demos', 'dataset', 'base', 'train', 'select')


@dataclass
class LearnConfig:
    """One `learn` run.

    Attributes:
        profile: robot profile (`widowx_bridge`).
        task: simulator task.
        out: output directory.
        demos: expert episodes to record (failed ones are recorded but not trained on).
        noise: DART noise std of the executed actions (translation m, rotation rad).
        noise_probability: share of expert ticks that are perturbed.
        expert_plan_from: 'measured': the expert plans each tick on the measured pose, which
            the camera shows; 'target': open loop on the commanded target, which the arm (and
            so every frame) lags by about a step, so the labels of moving frames depend on
            what the frame cannot show (the step before, and its DART noise).
        expert_speed: the expert's largest step per tick (translation m per axis, rotation rad).
        expert_gain: planned on the measured pose, the share of the way to its waypoint the
            expert asks for per tick (the arm lags about a tick; 1 would overshoot for ever).
        miss_probability: share of the demonstrations whose first grasp descends 2.5-4 cm
            beside the object on purpose (after the usual approach), then finds the object not
            in its hand and grasps again (`ScriptedExpert.miss_next_grasp`): the data then
            shows a learner's missed grasps and the way back. The deliberate descent and
            closing carry no label. Needs
            `expert_plan_from` 'measured'; the demonstrations then get 1.5 times the task's
            time.
        demo_time_factor: simulated seconds per wall-clock second at most while recording
            the demonstrations (the simulator's `max_real_time_factor`); 0: as fast as the
            graph keeps up. The simulator still holds its clock at each control tick for the
            arm command; the expert's chunk has less wall time to arrive before it is due, and
            its episodes drift a millimetre or so from real-time ones (docs/learning.md).
            Selection and evaluation always run in real time: a learned model's inference
            takes wall-clock time.
        model_size: a name in `SMALL_SPECS`.
        vision_steps: steps of the vision pretraining on simulator views before the action
            training (`vision_pretrain.py`: the ViTs and projector learn where the task's
            objects and the gripper are; 0, the default: the action training starts from
            random ViTs, as the shipped lift model did; with the stage, two lift_block runs
            did worse than without, docs/learning.md's fourteenth and fifteenth runs).
        vision_views: views (arm poses) rendered per demonstration scene for it.
        steps: optimizer steps.
        batch_size: samples per step.
        lr: peak learning rate (cosine to 10 %, linear warm-up).
        warmup_steps: warm-up steps.
        augment: 'camera', 'openvla' or 'none'.
        bin_sigma: width in bins of the action tokens' Gaussian soft targets (0: one-hot;
            `FinetuneConfig.bin_sigma`).
        save_every: checkpoint (and selection candidate) every N steps.
        select_episodes: episodes per candidate on the selection seeds (0: take the last step).
        eval_episodes: episodes of the final evaluation.
        demo_seed, select_seed, eval_seed: first seed of each (disjoint) range.
        seed: training seed (weights, order, augmentation).
        unnorm_key: the dataset statistics key of the learned model.
        threads: torch threads for training (0: torch's default).
        keep_still: keep the expert's hold-still labels (six zero deltas) in the dataset. For
            a scripted expert they are commands (settle above the block, wait for the gripper),
            not the idle frames of teleoperation that OpenVLA's zero-action filter (False)
            removes; without them the model has never seen "stop here", and moves on.
        use_failed_demos: also train on expert episodes that failed (for smoke tests: a
            failed episode's labels lead nowhere, e.g. the open-loop expert's after a safety
            hold, where the arm no longer followed its target).
        device: training device, 'cpu' or 'cuda[:N]' (episodes always run here, on the CPU).
        workers: batch-building processes of the training (-1: `FinetuneConfig`'s choice).
        stop_after: '' (run every stage) or the last stage to run: 'demos', 'dataset', 'base',
            'train' or 'select' (e.g. record and build the base here, train on a GPU machine,
            resume).
    """

    profile: str = 'widowx_bridge'
    task: str = 'lift_block'
    out: str = 'runs/learn'
    demos: int = 400
    noise: tuple[float, float] = (0.006, 0.03)
    noise_probability: float = 0.3
    expert_plan_from: str = 'measured'
    expert_speed: tuple[float, float] = (0.04, 0.15)
    expert_gain: float = 0.4
    miss_probability: float = 0.0
    demo_time_factor: float = 0.0
    model_size: str = 'small224'
    vision_steps: int = 0
    vision_views: int = 5
    steps: int = 11000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 50
    augment: str = 'camera'
    bin_sigma: float = 3.0
    save_every: int = 2750
    select_episodes: int = 8
    eval_episodes: int = 20
    demo_seed: int = 1000
    select_seed: int = 5000
    eval_seed: int = 9000
    seed: int = 0
    unnorm_key: str = ''
    threads: int = 0
    keep_still: bool = True
    use_failed_demos: bool = False
    device: str = 'cpu'
    workers: int = -1
    stop_after: str = ''
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check values early and name the field."""
        for name in (
            'demos',
            'steps',
            'batch_size',
            'save_every',
            'eval_episodes',
            'vision_views',
        ):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.vision_steps < 0:
            raise ValueError(f'vision_steps must be >= 0, got {self.vision_steps}')
        if self.stop_after not in STAGES:
            raise ValueError(f'stop_after must be one of {STAGES}, got {self.stop_after!r}')
        if self.select_episodes < 0:
            raise ValueError(f'select_episodes must be >= 0, got {self.select_episodes}')
        self.noise = (float(self.noise[0]), float(self.noise[1]))
        if min(self.noise) < 0:
            raise ValueError(f'noise must be >= 0, got {self.noise}')
        if self.expert_plan_from not in ('measured', 'target'):
            raise ValueError(
                f"expert_plan_from must be 'measured' or 'target', got {self.expert_plan_from!r}"
            )
        self.expert_speed = (float(self.expert_speed[0]), float(self.expert_speed[1]))
        if not (0 < self.expert_speed[0] <= 0.05 and 0 < self.expert_speed[1] <= 0.25):
            raise ValueError(
                f'expert_speed must be in (0, 0.05] m and (0, 0.25] rad, got {self.expert_speed}'
            )
        if not 0.05 <= self.expert_gain <= 1.0:
            raise ValueError(f'expert_gain must be in [0.05, 1], got {self.expert_gain}')
        if not 0.0 <= self.miss_probability <= 1.0:
            raise ValueError(f'miss_probability must be in [0, 1], got {self.miss_probability}')
        if self.miss_probability > 0 and self.expert_plan_from != 'measured':
            raise ValueError(
                "miss_probability > 0 needs expert_plan_from 'measured' (the expert recovers "
                'from a miss only on the measured pose)'
            )
        if self.demo_time_factor < 0:
            raise ValueError(f'demo_time_factor must be >= 0, got {self.demo_time_factor}')
        if not self.unnorm_key:
            self.unnorm_key = f'sim_{self.task}'
        ranges = seed_ranges(self)
        names = list(ranges)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                lo_a, hi_a = ranges[a]
                lo_b, hi_b = ranges[b]
                if lo_a < hi_b and lo_b < hi_a:
                    raise ValueError(f'{a} seeds {ranges[a]} overlap {b} seeds {ranges[b]}')

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_ranges(config: LearnConfig) -> dict[str, tuple[int, int]]:
    """[first, last + 1) of the demonstration, selection and evaluation seeds."""
    return {
        'demos': (config.demo_seed, config.demo_seed + config.demos),
        'selection': (config.select_seed, config.select_seed + config.select_episodes),
        'evaluation': (config.eval_seed, config.eval_seed + config.eval_episodes),
    }


# --- state --------------------------------------------------------------------------------------
class _State:
    """`learn.json`: settings, per-stage results and timings, rewritten after every change."""

    def __init__(self, out: Path, config: LearnConfig) -> None:
        self.path = out / STATE_NAME
        self.data: dict[str, Any] = {}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())
            saved = dict(self.data.get('settings', {}))
            if self.data.get('demos') and 'expert_plan_from' not in saved:
                # recorded before the option existed: by the open-loop expert at full speed
                saved.update(expert_plan_from='target', expert_speed=[0.05, 0.15])
            if self.data.get('demos') and 'miss_probability' not in saved:
                saved.update(miss_probability=0.0)  # recorded before the option: no misses
            if (out / 'base').exists() and 'vision_steps' not in saved:
                saved.update(vision_steps=0)  # built before the option: random ViTs
            now = config.to_dict()
            # settings that shaped a stage already run must not change (a stage not yet run
            # may still get other settings, e.g. another batch size for a GPU machine)
            keys = [
                'profile', 'task', 'noise', 'noise_probability', 'expert_plan_from',
                'expert_speed', 'expert_gain', 'miss_probability',
            ]  # fmt: skip
            if (out / 'dataset').exists():  # until then --demos may grow or shrink the set
                keys += ['demos', 'model_size', 'keep_still']  # frames at the model's side
            if (out / 'base').exists():
                keys += ['model_size', 'seed', 'vision_steps', 'vision_views']
            if (out / 'train').exists():
                keys += ['model_size', 'batch_size', 'lr', 'seed', 'bin_sigma']
            keys = list(dict.fromkeys(keys))  # model_size counts for both stages: name it once
            diffs = [k for k in keys if k in saved and _jsonable(saved[k]) != _jsonable(now[k])]
            if diffs:
                raise ValueError(
                    f'{out} holds a learn run with other settings ({", ".join(diffs)}); '
                    'use another --out'
                )
        self.data['settings'] = _jsonable(config.to_dict())
        self.data['seeds'] = {k: list(v) for k, v in seed_ranges(config).items()}
        self.data.setdefault('demos', {})
        self.data.setdefault('selection', {})
        self.data.setdefault('timings_s', {})
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix('.tmp')
        tmp.write_text(json.dumps(self.data, indent=2) + '\n')
        tmp.replace(self.path)

    def add_time(self, stage: str, seconds: float) -> None:
        timings = self.data['timings_s']
        timings[stage] = round(timings.get(stage, 0.0) + seconds, 1)
        self.save()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _stopped(state: _State, stage: str) -> dict[str, Any]:
    """The partial result of a run told to stop after `stage` (run again to go on)."""
    return {'stopped_after': stage, 'state': str(state.path), **state.data}


# --- stages -------------------------------------------------------------------------------------
def _episode(config: LearnConfig, seed: int, **kwargs: Any) -> Any:
    from openvla_ros.harness.rollouts import RolloutConfig, run_rollout

    cfg = RolloutConfig(
        profile=config.profile,
        task=config.task,
        seed=seed,
        camera_rate=10.0,
        frame_stride=10_000,
        **kwargs,
    )
    return run_rollout(cfg)


def _demo_duration(config: LearnConfig) -> float:
    """[s] a demonstration's limit: the task's (0), or 1.5 times it when grasps may miss on
    purpose (the recovery takes another approach and grasp)."""
    if config.miss_probability <= 0:
        return 0.0
    from openvla_ros.bringup.profiles import load_profile
    from openvla_ros.harness.rollouts import policy_rate
    from openvla_ros.sim.tasks import get_task

    profile = load_profile(config.profile)
    task = get_task(config.task, str(profile.get('robot')))
    return 1.5 * task.max_steps / policy_rate(profile, 'scripted')


def record_demos(config: LearnConfig, out: Path, state: _State, say: Callable) -> list[Path]:
    """Stage 1: expert episodes with DART noise, each as an MCAP bag; returns the good bags."""
    from tqdm.auto import tqdm

    bags = out / 'bags'
    bags.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = state.data['demos']
    start = time.monotonic()
    bar = tqdm(total=config.demos, desc='demonstrations', unit='ep', initial=len(done))
    try:
        for i in range(config.demos):
            seed = config.demo_seed + i
            bag = bags / f'demo_seed{seed}'
            if str(seed) in done and (bag / 'metadata.yaml').is_file():
                continue
            if bag.exists():
                shutil.rmtree(bag)  # interrupted while recording
            result = _episode(
                config,
                seed,
                policy='scripted',
                bag=str(bag),
                noise=config.noise,
                noise_probability=config.noise_probability,
                noise_seed=seed,
                expert_speed=config.expert_speed,
                expert_plan_from=config.expert_plan_from,
                expert_gain=config.expert_gain,
                miss_probability=config.miss_probability,
                duration=_demo_duration(config),
                max_real_time_factor=config.demo_time_factor,
            )
            done[str(seed)] = {
                'success': bool(result.success),
                'bag': bag.name,
                'real_time_factor': round(float(result.real_time_factor), 2),
            }
            state.save()
            bar.update(1)
            bar.set_postfix(success=f'{sum(d["success"] for d in done.values())}/{len(done)}')
    finally:
        bar.close()
        state.add_time('demos', time.monotonic() - start)
    lo, hi = seed_ranges(config)['demos']
    for extra in [k for k in done if not lo <= int(k) < hi]:  # --demos shrank: not used
        del done[extra]
    state.save()
    good = [bags / d['bag'] for d in done.values() if d['success'] or config.use_failed_demos]
    wins = sum(d['success'] for d in done.values())
    say(f'demonstrations: {wins} of {len(done)} expert episodes succeeded; {len(good)} used')
    return sorted(good)


def build_dataset(config: LearnConfig, out: Path, bags: list[Path], state: _State) -> Path:
    """Stage 2: the labelled dataset (rebuilt only when missing)."""
    from openvla_ros.data import episodes_from_bags, RecordConfig, write_dataset
    from openvla_ros.data.bag_episodes import EXPERT_LABEL_TOPIC

    path = out / 'dataset'
    if (path / 'dataset.json').is_file() or (path / 'statistics.json').is_file():
        return path
    if path.exists():
        shutil.rmtree(path)
    start = time.monotonic()
    from openvla_ros.finetune.small_model import SMALL_SPECS

    record = RecordConfig.from_profile(
        config.profile,
        label_topic=EXPERT_LABEL_TOPIC,
        image_size=SMALL_SPECS[config.model_size].image_size,  # as the processor resizes
        jpeg_quality=DATASET_JPEG_QUALITY,
        drop_zero_actions=not config.keep_still,
    )
    episodes = episodes_from_bags([str(b) for b in bags], record, progress=True)
    write_dataset(path, episodes, record)
    state.data['dataset'] = {
        'episodes': len(episodes),
        'steps': int(sum(len(e) for e in episodes)),
        'dropped_zero': int(sum(e.dropped_zero for e in episodes)),
    }
    state.add_time('dataset', time.monotonic() - start)
    return path


def build_base(config: LearnConfig, out: Path, state: _State) -> Path:
    """Stage 3: the small base model, its vision stage pretrained on views of the
    demonstration scenes (training scenes: no seed of selection or evaluation is rendered)."""
    from openvla_ros.bringup.profiles import load_profile
    from openvla_ros.finetune.small_model import make_small_model
    from openvla_ros.finetune.vision_pretrain import pretrain_vision, VisionPretrainConfig

    base = out / 'base'
    if (base / 'config.json').is_file():
        return base
    if not config.vision_steps:
        make_small_model(base, config.model_size, seed=config.seed)
        return base
    random = out / 'base_random'
    if not (random / 'config.json').is_file():
        make_small_model(random, config.model_size, seed=config.seed)
    start = time.monotonic()
    summary = pretrain_vision(
        VisionPretrainConfig(
            model=str(random),
            out=str(base),
            robot=str(load_profile(config.profile).get('robot')),
            task=config.task,
            first_seed=config.demo_seed,
            scenes=config.demos,
            views=config.vision_views,
            held_out_scenes=config.demos // 20,
            steps=config.vision_steps,
            seed=config.seed,
        )
    )
    state.data['vision'] = {
        k: summary[k]
        for k in ('classes', 'views', 'held_out_views', 'held_out_hits_before',
                  'held_out_hits_after', 'final_loss')
    }  # fmt: skip
    state.add_time('vision', time.monotonic() - start)
    shutil.rmtree(random)
    return base


def train(config: LearnConfig, out: Path, data: Path, state: _State) -> Any:
    """Stages 3-4: the small base model, then full-parameter training (resumable)."""
    from openvla_ros.finetune.config import FinetuneConfig
    from openvla_ros.finetune.trainer import latest_checkpoint, SUMMARY_NAME, Trainer

    base = build_base(config, out, state)
    run = out / 'train'
    if (run / SUMMARY_NAME).is_file() and state.data.get('train', {}).get('done'):
        return None
    exports = sorted(int(p.name.split('_')[-1]) for p in run.glob('export_step_*'))
    if exports and latest_checkpoint(run) is None and not (run / SUMMARY_NAME).is_file():
        # a training cut short on another machine (a time limit): only its exports came back;
        # they are the candidates, and training here would start over from scratch
        state.data.setdefault('train', {}).update(done=True, cut_short_at=exports[-1])
        state.save()
        return None
    steps_total = len(state.data.get('dataset', {})) and state.data['dataset']['steps']
    finetune = FinetuneConfig(
        model=str(base),
        data=str(data),
        out=str(run),
        unnorm_key=config.unnorm_key,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        augment=config.augment,
        bin_sigma=config.bin_sigma,
        save_every=config.save_every,
        keep_checkpoints=max(1, config.steps // config.save_every + 1),
        resume=latest_checkpoint(run) is not None or (run / SUMMARY_NAME).is_file(),
        full=True,
        val_fraction=0.1,
        max_eval_batches=8,
        lr_schedule='cosine',
        warmup_steps=config.warmup_steps,
        seed=config.seed,
        device=config.device,
        workers=config.workers,
    )
    start = time.monotonic()
    trainer = Trainer(finetune, progress=True)
    state.data['train'] = {
        'parameters': trainer.total,
        'train_steps': len(trainer.train_steps),
        'held_out_steps': len(trainer.val_steps),
        'dataset_steps': steps_total,
        'done': False,
    }
    state.save()
    try:
        trainer.train()
    finally:  # an interrupted run's time counts too
        state.add_time('train', time.monotonic() - start)
    summary = json.loads((run / SUMMARY_NAME).read_text())
    state.data['train'].update(
        done=True,
        final_train=summary['final_train'],
        initial_eval=summary['initial_eval'],
        final_eval=summary['final_eval'],
        eval_history=summary['history']['eval'],
    )
    state.save()
    _candidates(config, run, base)  # export every candidate now: exports are what travels
    return trainer


def _step_checkpoints(run: Path) -> list[Path]:
    """The complete step checkpoints of a training run, by step."""
    from openvla_ros.finetune.trainer import CHECKPOINTS_DIR
    from openvla_ros.finetune.trainer import STATE_NAME as TRAINER_STATE

    return sorted(
        (p for p in (run / CHECKPOINTS_DIR).glob('step_*') if (p / TRAINER_STATE).is_file()),
        key=lambda p: int(p.name.split('_')[1]),
    )


def _candidates(config: LearnConfig, run: Path, base: Path) -> dict[int, Path]:
    """Step -> exported checkpoint directory of every selection candidate: the step
    checkpoints (exported here when needed) and exports that came without their step
    checkpoint (a training run on another machine, where only the exports were copied back)."""
    found = {int(p.name.split('_')[-1]): p for p in run.glob('export_step_*')
             if (p / 'config.json').is_file()}  # fmt: skip
    for step_dir in _step_checkpoints(run):
        step = int(step_dir.name.split('_')[1])
        if step not in found:
            found[step] = export_checkpoint(run, step_dir, base, config.unnorm_key)
    return dict(sorted(found.items()))


def export_checkpoint(run: Path, step_dir: Path, base: Path, unnorm_key: str) -> Path:
    """A step checkpoint (float32 state) as an ordinary OpenVLA checkpoint directory."""
    from safetensors.torch import load_file

    from openvla_ros.data.statistics import read_statistics_file
    from openvla_ros.finetune.trainer import MODEL_STATE_NAME, save_full_checkpoint
    from openvla_ros.model.configuration import OpenVLAConfig

    out = run / f'export_{step_dir.name}'
    if (out / 'config.json').is_file():
        return out
    config = OpenVLAConfig.from_json_file(base / 'config.json')
    stats = read_statistics_file(step_dir / 'dataset_statistics.json')
    stats = {unnorm_key: stats[unnorm_key]}
    state = load_file(str(step_dir / MODEL_STATE_NAME))
    return save_full_checkpoint(state, config, base, out, stats)


def evaluate_policy(
    config: LearnConfig, model: Path, seeds: range, desc: str
) -> list[dict[str, Any]]:
    """Run the learned policy through the full stack on `seeds`; one record per episode."""
    from tqdm.auto import tqdm

    results = []
    bar = tqdm(list(seeds), desc=desc, unit='ep')
    for seed in bar:
        result = _episode(
            config,
            seed,
            policy='openvla',
            model=str(model),
            unnorm_key=config.unnorm_key,
            device='cpu',
            dtype='float32',
        )
        results.append(
            {
                'seed': seed,
                'success': bool(result.success),
                'time_to_success_s': round(result.time_to_success, 2) if result.success else None,
                'clipped': result.clipped,
                'rejected': result.rejected,
                **result.outcome,
            }
        )
        bar.set_postfix(success=f'{sum(r["success"] for r in results)}/{len(results)}')
    bar.close()
    return results


def select(config: LearnConfig, out: Path, state: _State, say: Callable) -> Path:
    """Stage 5: every kept checkpoint on the selection seeds; the best is copied to `best/`."""
    run = out / 'train'
    candidates = _candidates(config, run, out / 'base')
    if not candidates:
        raise ValueError(f'no training checkpoints in {run}')
    if config.select_episodes == 0:
        candidates = dict(list(candidates.items())[-1:])
    chosen = state.data['selection']
    start = time.monotonic()
    seeds = range(config.select_seed, config.select_seed + config.select_episodes)
    for step, exported in candidates.items():
        key = str(step)
        if key in chosen:
            continue
        episodes = evaluate_policy(config, exported, seeds, f'selection step {key}')
        successes = sum(e['success'] for e in episodes)
        chosen[key] = {
            'successes': successes,
            'episodes': len(episodes),
            'per_episode': episodes,
            'checkpoint': str(exported),
        }
        state.save()
        say(f'selection: step {key}: {successes}/{len(episodes)}')
    state.add_time('selection', time.monotonic() - start)
    best_key = max(chosen, key=lambda k: (chosen[k]['successes'], int(k)))
    state.data['best_step'] = int(best_key)
    best = out / 'best'
    if best.exists():
        shutil.rmtree(best)
    shutil.copytree(chosen[best_key]['checkpoint'], best)
    (best / 'learned.json').write_text(
        json.dumps(
            {
                'task': config.task,
                'profile': config.profile,
                'unnorm_key': config.unnorm_key,
                'step': int(best_key),
                'model_size': config.model_size,
                'trained_by': 'openvla-ros learn',
            },
            indent=2,
        )
        + '\n'
    )
    state.save()
    return best


def final_evaluation(config: LearnConfig, out: Path, state: _State) -> dict[str, Any]:
    """Stage 6: the chosen checkpoint on the evaluation seeds (run once)."""
    from openvla_ros.metrics.success import wilson_interval
    from openvla_ros.sim.outcome import count_failures

    if 'evaluation' in state.data and state.data['evaluation'].get('step') == state.data.get(
        'best_step'
    ):
        return state.data['evaluation']
    start = time.monotonic()
    seeds = range(config.eval_seed, config.eval_seed + config.eval_episodes)
    episodes = evaluate_policy(config, out / 'best', seeds, 'evaluation')
    successes = sum(e['success'] for e in episodes)
    low, high = wilson_interval(successes, len(episodes))
    state.data['evaluation'] = {
        'step': state.data.get('best_step'),
        'successes': successes,
        'episodes': len(episodes),
        'success_rate': successes / len(episodes),
        'ci95': [round(low, 4), round(high, 4)],
        'failures': count_failures(e['outcome'] for e in episodes),
        'per_episode': episodes,
    }
    state.add_time('evaluation', time.monotonic() - start)
    return state.data['evaluation']


def write_report(config: LearnConfig, out: Path, state: _State) -> dict[str, Path]:
    """Stage 7: report.json, report.md and learning.png (success vs steps and vs demos)."""
    from openvla_ros.metrics.success import wilson_interval
    from openvla_ros.sim.outcome import describe_failures

    data = state.data
    evaluation = data.get('evaluation', {})
    demos = data.get('demos', {})
    used = sum(1 for d in demos.values() if d['success'] or config.use_failed_demos)
    timings = data.get('timings_s', {})
    factors = [d['real_time_factor'] for d in demos.values() if 'real_time_factor' in d]
    small = out / 'base' / 'small_model.json'  # how the base model started (None: not built)
    recipe = {
        'keep_still': config.keep_still,
        'batch_size': config.batch_size,
        'lr': config.lr,
        'augment': config.augment,
        'bin_sigma': config.bin_sigma,
        'pos_embed_init': (
            json.loads(small.read_text()).get('pos_embed_init', 'random') if small.is_file()
            else None
        ),
    }  # fmt: skip
    report = {
        'profile': config.profile,
        'task': config.task,
        'model_size': config.model_size,
        'demonstrations_recorded': len(demos),
        'demonstrations_used': used,
        # simulated seconds per wall-clock second of the recorded episodes (median; None:
        # recorded before it was kept)
        'demonstrations_real_time_factor': (
            round(statistics.median(factors), 2) if factors else None
        ),
        'expert': {
            'plan_from': config.expert_plan_from,
            'speed': list(config.expert_speed),
            'gain': config.expert_gain,
            'noise': list(config.noise),
            'noise_probability': config.noise_probability,
            'miss_probability': config.miss_probability,
        },
        'dataset': data.get('dataset'),
        'vision_pretraining': data.get('vision'),
        'training_steps': config.steps,
        'training': recipe,
        'best_step': data.get('best_step'),
        'selection': {
            k: {'successes': v['successes'], 'episodes': v['episodes']}
            for k, v in sorted(data.get('selection', {}).items(), key=lambda kv: int(kv[0]))
        },
        'evaluation': {k: v for k, v in evaluation.items() if k != 'per_episode'},
        'seeds': data.get('seeds'),
        'timings_s': timings,
        'total_time_s': round(sum(timings.values()), 1),
        'train': {k: v for k, v in data.get('train', {}).items() if k != 'eval_history'},
    }
    (out / 'report.json').write_text(json.dumps(report, indent=2) + '\n')
    plot = out / 'learning.png'
    _plot(report, data, plot)
    lines = [
        f'# learn: {config.task} ({config.profile})',
        '',
        '| what | value |',
        '|---|---|',
        f'| demonstrations (successful / recorded) | {used} / {len(demos)} |',
        f'| expert | planned on the {config.expert_plan_from} pose, steps up to '
        f'{config.expert_speed[0]:g} m / {config.expert_speed[1]:g} rad at gain '
        f'{config.expert_gain:g}, DART noise '
        f'{config.noise[0]:g} m / {config.noise[1]:g} rad on {config.noise_probability:g} '
        f'of the ticks, first grasp missed on purpose in {config.miss_probability:g} of the '
        'episodes |',
        f'| demonstrations ran at (median, simulated / wall-clock seconds) | '
        f'{report["demonstrations_real_time_factor"]} |',
        f'| dataset steps | {(data.get("dataset") or {}).get("steps")} |',
        f'| model | {config.model_size} ({data.get("train", {}).get("parameters")} parameters) |',
        f'| vision pretraining | {_vision_line(config, data.get("vision"))} |',
        f'| training steps (best) | {config.steps} ({data.get("best_step")}) |',
        f'| training | still labels {"kept" if config.keep_still else "dropped"}, '
        f'batch {config.batch_size}, lr {config.lr:g} cosine, augment '
        f'{config.augment}, bin_sigma {config.bin_sigma:g}, position embeddings from '
        f'{recipe["pos_embed_init"]} |',
    ]
    if evaluation:
        low, high = wilson_interval(evaluation['successes'], evaluation['episodes'])
        lines.append(
            f'| success on evaluation seeds | {evaluation["successes"]}/{evaluation["episodes"]} '
            f'= {100 * evaluation["success_rate"]:.0f} % (95 % Wilson {100 * low:.0f}-'
            f'{100 * high:.0f} %) |'
        )
        failures = evaluation.get('failures')  # absent in runs evaluated before the trace
        if failures is not None:
            named = describe_failures(failures) or 'none'
            lines.append(f'| failures on evaluation seeds | {named} |')
    stages = ', '.join(f'{k} {v}' for k, v in timings.items())
    lines += [
        f'| time [s] | {report["total_time_s"]} ({stages}) |',
        '',
        f'Seeds: demonstrations {data["seeds"]["demos"]}, selection {data["seeds"]["selection"]}, '
        f'evaluation {data["seeds"]["evaluation"]} ([first, last + 1)).',
        '',
        '![learning curve](learning.png)',
        '',
    ]
    (out / 'report.md').write_text('\n'.join(lines))
    return {'json': out / 'report.json', 'markdown': out / 'report.md', 'plot': plot}


def _vision_line(config: LearnConfig, vision: dict[str, Any] | None) -> str:
    """The report's line on the vision pretraining: steps, views, held-out hit rates."""
    if not config.vision_steps or vision is None:
        return 'none (random ViTs)' if not config.vision_steps else 'not run yet'
    hits = vision['held_out_hits_after'] or []
    found = ', '.join(f'{c} {h:.2f}' for c, h in zip(vision['classes'], hits))
    return (
        f'{config.vision_steps} steps on {vision["views"]} views; best patch on the object in '
        f'held-out views: {found or "no held-out views"}'
    )


def _plot(report: dict[str, Any], data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from openvla_ros.metrics.success import wilson_interval

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    selection = report['selection']
    if selection:
        xs = [int(k) for k in selection]
        rates = [v['successes'] / max(1, v['episodes']) for v in selection.values()]
        ci = [wilson_interval(v['successes'], v['episodes']) for v in selection.values()]
        below = [r - lo for r, (lo, _) in zip(rates, ci)]
        above = [hi - r for r, (_, hi) in zip(rates, ci)]
        ax1.errorbar(
            xs,
            rates,
            yerr=[below, above],
            marker='o',
            capsize=3,
            label='selection seeds',
        )
    evaluation = report['evaluation']
    if evaluation:
        lo, hi = evaluation['ci95']
        rate = evaluation['success_rate']
        ax1.errorbar(
            [evaluation['step']], [rate], yerr=[[rate - lo], [hi - rate]], marker='s',
            color='C3', capsize=3, label='evaluation seeds (held out)',
        )  # fmt: skip
    ax1.set_xlabel('training steps')
    ax1.set_ylabel('success rate')
    ax1.set_ylim(-0.05, 1.05)
    ax1.legend(loc='upper left')
    ax1.set_title(f'{report["task"]}: success vs training steps')
    scaling = data.get('demo_scaling', {})
    points = {int(k): v for k, v in scaling.items()}
    if evaluation:
        points.setdefault(
            report['demonstrations_used'],
            {'successes': evaluation['successes'], 'episodes': evaluation['episodes']},
        )
    if points:
        xs = sorted(points)
        rates = [points[x]['successes'] / max(1, points[x]['episodes']) for x in xs]
        ax2.plot(xs, rates, marker='o')
    ax2.set_xlabel('demonstrations used')
    ax2.set_ylabel('success rate')
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_title('success vs demonstrations')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_learn(config: LearnConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every stage; returns the report.

    Raises:
        ValueError: bad settings, an output directory of another run, no successful demos.
        RuntimeError: the stack did not come up for an episode.
    """
    import torch

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    state = _State(out, config)
    if config.threads:
        torch.set_num_threads(config.threads)
    data = out / 'dataset'
    if not (data / 'dataset.json').is_file():  # built: the bags are not needed (nor copied)
        bags = record_demos(config, out, state, say)
        if not bags:
            raise ValueError('no successful demonstration to learn from')
        if config.stop_after == 'demos':
            return _stopped(state, 'demos')
        data = build_dataset(config, out, bags, state)
    say(f'dataset: {state.data["dataset"]["steps"]} steps in {data}')
    if config.stop_after == 'dataset':
        return _stopped(state, 'dataset')
    build_base(config, out, state)
    if config.stop_after == 'base':
        return _stopped(state, 'base')
    train(config, out, data, state)
    if config.stop_after == 'train':
        return _stopped(state, 'train')
    best = select(config, out, state, say)
    say(f'best checkpoint: step {state.data["best_step"]} -> {best}')
    if config.stop_after == 'select':
        return _stopped(state, 'select')
    evaluation = final_evaluation(config, out, state)
    say(
        f'evaluation: {evaluation["successes"]}/{evaluation["episodes"]} on held-out seeds '
        f'(95 % CI {evaluation["ci95"]})'
    )
    paths = write_report(config, out, state)
    report = json.loads(paths['json'].read_text())
    report['paths'] = {k: str(v) for k, v in paths.items()}
    return report
