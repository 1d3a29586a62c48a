#!/usr/bin/env python3
"""How far a learned checkpoint follows the expert, per action dimension, on held-out frames.

Teacher-forcing-free: the checkpoint predicts (greedy, as the policy node does) on 80 frames of
the held-out episodes of a `learn` dataset (the split `learn` trains with: 10 %, seed 0), and the
Pearson correlation of each predicted dimension with the expert's label is printed as JSON. A
dimension the image alone decides (dx, dy: where the object is) near 0 while the phase dimensions
(dz, pitch, gripper) are high means the model learned the task's sequence but not to look.

    python scripts/learned_agreement.py RUN/dataset CHECKPOINT [--samples 80]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from openvla_ros.data.dataset import Dataset
from openvla_ros.finetune.batches import split_steps
from openvla_ros.model.policy import OpenVLAPolicy

DIMENSIONS = ('dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('dataset')
    parser.add_argument('checkpoint')
    parser.add_argument('--samples', type=int, default=80)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = Dataset(args.dataset)
    _, held_out = split_steps(data, 0.1, 0)
    policy = OpenVLAPolicy.load(args.checkpoint, device='cpu', dtype='float32')
    with open(f'{args.checkpoint}/config.json') as f:
        key = next(iter(json.load(f)['norm_stats']))
    rng = np.random.default_rng(0)
    picks = rng.choice(len(held_out), size=min(args.samples, len(held_out)), replace=False)
    predicted, expert = [], []
    for i in picks:
        episode, step = held_out[i]
        frame, text = data.frame(episode, step), data.instruction(episode)
        predicted.append(np.asarray(policy.predict(frame, text, unnorm_key=key).action))
        expert.append(data.actions(episode)[step])
    p, y = np.array(predicted), np.array(expert)
    corr = {
        name: round(float(np.corrcoef(p[:, i], y[:, i])[0, 1]), 2)
        for i, name in enumerate(DIMENSIONS)
    }
    report = {'checkpoint': args.checkpoint, 'held_out_samples': len(picks), 'corr': corr}
    print(json.dumps(report))


if __name__ == '__main__':
    main()
