#!/usr/bin/env python3
"""Can a small OpenVLA's vision stage find the block? A probe with the simulator's ground truth.

`learn`'s models learn the task's phases but not where the block is (docs/learning.md). This
asks the vision stage alone, with the strongest signal there is: simulator frames (the arm at
random joint angles around its start pose, the lift_block scene of each seed, 240x320 renders
resized to the model's side as the dataset does) labelled with the block's x, y and the
end-effector's x, y, z in the base frame. The checkpoint's ViTs and projector train with a
linear head on the mean of the projected patches (what every Llama token could read), MSE on
standardised labels, `--augment camera` as `learn` trains; every 500 steps the held-out R^2 of
each label is printed as one JSON line. The mean of 256 patches dilutes a 10 px block: asked per
patch instead (the loss of `learn`'s vision stage, `openvla_ros/finetune/vision_pretrain.py`),
the same ViTs find every block within a few hundred steps (docs/learning.md).

    python scripts/vision_probe.py RUN/base [--scenes 1500 --views 4 --steps 2500]

Scenes come from seeds 20000 + i (held out: 30000 + i), outside `learn`'s demonstration,
selection and evaluation ranges.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

LABELS = ('block_x', 'block_y', 'ee_x', 'ee_y', 'ee_z')


def render_views(first_seed: int, scenes: int, views: int, size: int) -> tuple[np.ndarray, ...]:
    """(frames (n, size, size, 3) uint8, labels (n, 5) float32) of `scenes` x `views` renders."""
    from openvla_ros.data.bag_episodes import _resize
    from openvla_ros.finetune.vision_pretrain import pose_arm_at_random, RENDER_SIZE
    from openvla_ros.sim.world import SimWorld

    rng = np.random.default_rng(first_seed)
    frames, labels = [], []
    with SimWorld('wx250s', task='lift_block', seed=first_seed, image_size=RENDER_SIZE) as world:
        for seed in range(first_seed, first_seed + scenes):
            for _ in range(views):
                pose_arm_at_random(world, seed, rng)  # the vision stage's own views
                block = next(iter(world.object_poses().values()))[:3, 3]
                ee = world.ee_pose()[:3, 3]
                frames.append(_resize(world.render(), size))  # the dataset's own resize
                labels.append([block[0], block[1], ee[0], ee[1], ee[2]])
    return np.stack(frames), np.asarray(labels, np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model', help='a small OpenVLA checkpoint directory (e.g. RUN/base)')
    parser.add_argument('--scenes', type=int, default=1500)
    parser.add_argument('--views', type=int, default=4, help='arm poses per scene')
    parser.add_argument('--held-out-scenes', type=int, default=100)
    parser.add_argument('--steps', type=int, default=2500)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--eval-every', type=int, default=500)
    args = parser.parse_args()

    from PIL import Image

    from openvla_ros.finetune.batches import augment_camera
    from openvla_ros.model.loading import load_model
    from openvla_ros.model.processor import OpenVLAProcessor

    torch.manual_seed(0)
    loaded = load_model(args.model, dtype='float32', progress=False)
    core = loaded.model.train()
    processor = OpenVLAProcessor(loaded.tokenizer, loaded.image_config)
    size = loaded.image_config.image_sizes[0]
    start = time.monotonic()
    train_frames, train_labels = render_views(20000, args.scenes, args.views, size)
    val_frames, val_labels = render_views(30000, args.held_out_scenes, args.views, size)
    mean, std = train_labels.mean(0), train_labels.std(0)
    train_y = torch.from_numpy((train_labels - mean) / std)
    val_y = (val_labels - mean) / std
    print(json.dumps({'frames': len(train_y), 'held_out': len(val_y),
                      'render_s': round(time.monotonic() - start, 1)}), flush=True)  # fmt: skip

    def pixels(frames: np.ndarray, seed: int | None) -> torch.Tensor:
        out = []
        for i, frame in enumerate(frames):
            image = Image.fromarray(frame)
            if seed is not None:
                generator = torch.Generator().manual_seed(seed + i)
                image = augment_camera(image, generator, size)
            out.append(processor.preprocess_image(image))
        return torch.stack(out)

    with torch.no_grad():
        width = core.embed_images(pixels(train_frames[:1], None)).shape[-1]
    head = nn.Linear(width, len(LABELS))
    params = [*core.vision_backbone.parameters(), *core.projector.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)

    def lr_factor(step: int) -> float:  # 50 warm-up steps, cosine to 10 %
        cosine = 0.5 * (1 + np.cos(np.pi * min(step, args.steps) / args.steps))
        return min(1.0, (step + 1) / 50) * (0.1 + 0.9 * cosine)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)

    def held_out_r2() -> dict[str, float]:
        core.eval()
        with torch.no_grad():
            pred = np.concatenate([
                head(core.embed_images(pixels(val_frames[i : i + 64], None)).mean(1)).numpy()
                for i in range(0, len(val_frames), 64)
            ])  # fmt: skip
        core.train()
        r2 = 1 - ((pred - val_y) ** 2).mean(0) / val_y.var(0)
        return {name: round(float(v), 3) for name, v in zip(LABELS, r2)}

    rng = np.random.default_rng(0)
    start = time.monotonic()
    for step in range(1, args.steps + 1):
        index = rng.integers(0, len(train_y), size=args.batch_size)
        pred = head(core.embed_images(pixels(train_frames[index], step * 1000)).mean(1))
        loss = ((pred - train_y[index]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % args.eval_every == 0 or step == args.steps:
            print(json.dumps({'step': step, 'loss': round(float(loss.detach()), 4),
                              'seconds': round(time.monotonic() - start),
                              'held_out_r2': held_out_r2()}), flush=True)  # fmt: skip


if __name__ == '__main__':
    main()
