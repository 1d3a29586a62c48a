#!/usr/bin/env python3
"""How simple is what a `learn` model must read from the image? A linear fit of each episode's
first expert action (dx, dy, dz) on the pixel centroid of the red block in its first frame.

The red block is found by colour (the simulator's pure red: R > 150, G < 80, B < 80); episodes
where it covers fewer than 3 pixels are skipped. R^2 near 1 for dx and dy means the approach is
a linear function of where the block is in the picture: what limits a model that does not
follow it is learning to look, not the task.

    python scripts/label_pixel_probe.py RUN/dataset
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from openvla_ros.data.dataset import Dataset


def red_centroid(frame: np.ndarray) -> tuple[float, float, int] | None:
    """(u, v, pixels) of the pure-red pixels of an RGB frame, or None when there are < 3."""
    rgb = frame.astype(int)
    mask = (rgb[..., 0] > 150) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
    if mask.sum() < 3:
        return None
    v, u = np.nonzero(mask)
    return float(u.mean()), float(v.mean()), int(mask.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('dataset')
    args = parser.parse_args()
    data = Dataset(args.dataset)
    rows = []
    for episode in range(len(data)):
        found = red_centroid(np.asarray(data.frame(episode, 0)))
        if found is not None:
            rows.append((*found, *data.actions(episode)[0, :3]))
    table = np.array(rows)
    design = np.c_[table[:, 0], table[:, 1], np.ones(len(table))]
    r2 = {}
    for column, name in zip((3, 4, 5), ('dx', 'dy', 'dz')):
        y = table[:, column]
        fit, *_ = np.linalg.lstsq(design, y, rcond=None)
        r2[name] = round(float(1 - ((y - design @ fit) ** 2).mean() / y.var()), 3)
    report = {
        'dataset': args.dataset,
        'episodes': len(table),
        'block_pixels_mean': round(float(table[:, 2].mean()), 1),
        'first_action_std_m': {
            n: round(float(table[:, c].std()), 4) for c, n in zip((3, 4, 5), ('dx', 'dy', 'dz'))
        },
        'r2_on_block_pixel_centroid': r2,
    }
    print(json.dumps(report))


if __name__ == '__main__':
    main()
