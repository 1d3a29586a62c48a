"""Vision pretraining on simulator views: the part pretrained DINOv2 and SigLIP play in OpenVLA.

OpenVLA's ViTs come pretrained; `learn`'s small models start from random weights, and the
action loss alone takes thousands of steps before a model moves toward the block
(docs/learning.md). This stage first teaches the ViTs and the projector *where* each task object
and the gripper is: on views of the demonstration scenes with the arm at random poses, a linear
head scores every projected patch per object, and the softmax over the patches is trained toward
the share of each patch the object covers in the simulator's segmentation render. The labels are
privileged simulator truth used in training only: the policy still sees only the camera image,
the head is dropped, and the Llama is left as it was. No augmentation: a shift would move the
labels by a fraction of a patch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
import json
import math
from pathlib import Path
import shutil
import time
from typing import Any

import numpy as np
import torch

__all__ = [
    'localization_hits',
    'localization_loss',
    'patch_shares',
    'pose_arm_at_random',
    'pretrain_vision',
    'render_views',
    'VisionPretrainConfig',
    'Views',
]

SUMMARY_NAME = 'vision_pretrain.json'
#: [rad] each arm joint is drawn uniformly this far around the start pose
JOINT_SPREAD = 0.7
#: [m] the views keep the gripper between these heights above the table
GRIPPER_HEIGHTS = (0.02, 0.32)
#: linear warm-up steps of the learning rate (then a cosine to 10 %, as `learn`'s training)
WARMUP_STEPS = 50
#: (H, W) of the renders, resized to the model's side as the dataset's frames are
RENDER_SIZE = (240, 320)


@dataclass
class VisionPretrainConfig:
    """One vision pretraining.

    Attributes:
        model: the checkpoint directory to start from (`learn`'s random base).
        out: where the pretrained checkpoint goes (written whole, then moved into place).
        robot: simulated robot (`wx250s`).
        task: simulator task; its objects and the gripper are the classes.
        first_seed: first scene seed (`learn` passes its demonstration seeds: training scenes).
        scenes: scenes rendered; the last `held_out_scenes` of them are only measured.
        views: arm poses per scene.
        held_out_scenes: scenes kept out of training, for the reported hit rate.
        steps: optimizer steps (AdamW, linear warm-up, cosine to 10 %).
        batch_size: views per step.
        lr: peak learning rate.
        seed: pose draws, batch order and the head's initialisation.
    """

    model: str
    out: str
    robot: str = 'wx250s'
    task: str = 'lift_block'
    first_seed: int = 0
    scenes: int = 1000
    views: int = 2
    held_out_scenes: int = 50
    steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ('scenes', 'views', 'steps', 'batch_size'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if not 0 <= self.held_out_scenes < self.scenes:
            raise ValueError(
                f'held_out_scenes must be in [0, scenes), got {self.held_out_scenes} of '
                f'{self.scenes}'
            )
        if not self.lr > 0:
            raise ValueError(f'lr must be > 0, got {self.lr}')


@dataclass
class Views:
    """Rendered views: frames (n, S, S, 3) uint8 at the model's side and the patch shares
    (n, K, G, G) float32 of each class (`patch_shares`)."""

    frames: np.ndarray
    shares: np.ndarray
    classes: tuple[str, ...]


def patch_shares(labels: np.ndarray, classes: int, grid: int) -> np.ndarray:
    """(K, grid, grid): the share of each patch each class covers, from a (H, W) class map.

    The frame is squashed to the model's square side (`_resize`), so a patch of the model's
    grid is an (H / grid) x (W / grid) cell of the render; PIL's box filter averages it.
    """
    from PIL import Image

    return np.stack([
        np.asarray(Image.fromarray((labels == k).astype(np.float32)).resize(
            (grid, grid), Image.BOX))
        for k in range(classes)
    ]).astype(np.float32)  # fmt: skip


def pose_arm_at_random(world: Any, seed: int, rng: np.random.Generator) -> None:
    """Reset `world` to scene `seed` with the arm at a random pose around its start pose (the
    gripper between `GRIPPER_HEIGHTS` above the table) and the gripper half open at random."""
    while True:
        spread = rng.uniform(-JOINT_SPREAD, JOINT_SPREAD, size=len(world.joint_names))
        world.reset(seed=seed, q=world.spec.start_q + spread)
        if GRIPPER_HEIGHTS[0] < world.ee_pose()[2, 3] < GRIPPER_HEIGHTS[1]:
            break
    world.set_gripper(float(rng.uniform(0.0, 1.0)))
    world.step(0.1)


def render_views(
    robot: str,
    task: str,
    seeds: range,
    views: int,
    size: int,
    grid: int,
    rng: np.random.Generator,
    progress: Callable[[int], None] | None = None,
) -> Views:
    """`views` renders of each scene in `seeds` (`pose_arm_at_random`), with each class's patch
    shares."""
    from openvla_ros.data.bag_episodes import _resize
    from openvla_ros.sim.world import SimWorld

    frames, shares = [], []
    with SimWorld(robot, task=task, seed=seeds[0], image_size=RENDER_SIZE) as world:
        classes = (*world.objects, 'gripper')
        for seed in seeds:
            for _ in range(views):
                pose_arm_at_random(world, seed, rng)
                frames.append(_resize(world.render(), size))  # the dataset's own resize
                shares.append(patch_shares(world.segment(classes), len(classes), grid))
            if progress is not None:
                progress(1)
    return Views(np.stack(frames), np.stack(shares), classes)


def localization_loss(logits: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each class's softmax over the patches against its normalised shares.

    Args:
        logits: (B, N, K) per patch and class.
        shares: (B, K, N) share of each patch the class covers; a class not in view is skipped.
    """
    mass = shares.sum(-1, keepdim=True)
    seen = (mass[..., 0] > 0).to(logits.dtype)
    target = shares / mass.clamp_min(1e-6)
    ce = -(target * torch.log_softmax(logits.transpose(1, 2), dim=-1)).sum(-1)  # (B, K)
    return (ce * seen).sum() / seen.sum().clamp_min(1.0)


def localization_hits(logits: torch.Tensor, shares: torch.Tensor) -> list[float]:
    """Per class: the share of views (where it is in view) whose best-scored patch shows it."""
    best = logits.transpose(1, 2).argmax(-1, keepdim=True)  # (B, K, 1)
    hit = shares.gather(-1, best)[..., 0] > 0
    seen = shares.sum(-1) > 0
    return [float(hit[seen[:, k], k].float().mean()) if seen[:, k].any() else math.nan
            for k in range(shares.shape[1])]  # fmt: skip


def pretrain_vision(config: VisionPretrainConfig, progress: bool = True) -> dict[str, Any]:
    """Render, train the ViTs and projector to localise, write the checkpoint; the summary.

    The checkpoint at `config.out` is the model of `config.model` with the new ViT and projector
    weights (bf16 like every checkpoint here), its `small_model.json` kept; `vision_pretrain.json`
    beside it holds the held-out hit rates before and after, and the time.

    Raises:
        FileNotFoundError: `config.model` is not a checkpoint directory.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from openvla_ros.finetune.trainer import lr_factor, save_full_checkpoint
    from openvla_ros.model.loading import load_model
    from openvla_ros.model.processor import OpenVLAProcessor

    if not (Path(config.model) / 'config.json').is_file():
        raise FileNotFoundError(f'no checkpoint at {config.model} (config.json missing)')
    start = time.monotonic()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    loaded = load_model(config.model, dtype='float32', progress=False)
    net = loaded.model
    processor = OpenVLAProcessor(loaded.tokenizer, loaded.image_config)
    size = loaded.image_config.image_sizes[0]
    with torch.no_grad():
        probe = net.embed_images(processor.preprocess_image(Image.new('RGB', (size, size)))[None])
    grid = int(round(math.sqrt(probe.shape[1])))  # patches per side
    train_seeds = range(
        config.first_seed, config.first_seed + config.scenes - config.held_out_scenes
    )
    held_seeds = range(train_seeds.stop, config.first_seed + config.scenes)
    with tqdm(total=config.scenes, desc='vision views', unit='scene', disable=not progress) as bar:
        train = render_views(config.robot, config.task, train_seeds, config.views, size, grid,
                             rng, bar.update)  # fmt: skip
        held = (render_views(config.robot, config.task, held_seeds, config.views, size, grid,
                             rng, bar.update) if len(held_seeds) else None)  # fmt: skip
    render_s = time.monotonic() - start

    def pixels(frames: np.ndarray) -> torch.Tensor:
        return torch.stack([processor.preprocess_image(Image.fromarray(f)) for f in frames])

    def scored(frames: np.ndarray) -> torch.Tensor:
        return head(net.embed_images(pixels(frames)))  # (B, N, K)

    def held_out_hits() -> list[float] | None:
        if held is None:
            return None
        net.eval()
        with torch.no_grad():
            logits = torch.cat([scored(held.frames[i : i + 64])
                                for i in range(0, len(held.frames), 64)])  # fmt: skip
        net.train()
        return [round(h, 3) for h in localization_hits(logits, torch.from_numpy(
            held.shares.reshape(*held.shares.shape[:2], -1)))]  # fmt: skip

    classes = len(train.classes)
    head = torch.nn.Linear(probe.shape[-1], classes)
    params = [*net.vision_backbone.parameters(), *net.projector.parameters(), *head.parameters()]
    before = held_out_hits()
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01)
    warmup = min(WARMUP_STEPS, config.steps - 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config.steps, warmup)
    )
    shares = torch.from_numpy(train.shares.reshape(*train.shares.shape[:2], -1))
    net.train()
    loss = torch.zeros(())
    with tqdm(total=config.steps, desc='vision pretraining', unit='step',
              disable=not progress) as bar:  # fmt: skip
        for _ in range(config.steps):
            index = rng.integers(0, len(train.frames), size=config.batch_size)
            loss = localization_loss(scored(train.frames[index]), shares[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f'{float(loss.detach()):.3f}')
    after = held_out_hits()
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    out = Path(config.out)
    tmp = out.with_name(out.name + '.tmp')
    if tmp.exists():
        shutil.rmtree(tmp)
    save_full_checkpoint(state, loaded.config, config.model, tmp, loaded.config.norm_stats or {})
    small = Path(config.model) / 'small_model.json'
    if small.is_file():
        shutil.copyfile(small, tmp / small.name)
    summary = {
        'settings': asdict(config),
        'classes': list(train.classes),
        'views': len(train.frames),
        'held_out_views': 0 if held is None else len(held.frames),
        'held_out_hits_before': before,
        'held_out_hits_after': after,
        'final_loss': round(float(loss.detach()), 4),
        'render_s': round(render_s, 1),
        'seconds': round(time.monotonic() - start, 1),
    }
    (tmp / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + '\n')
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    return summary
