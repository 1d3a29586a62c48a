"""Dataset statistics in OpenVLA's `norm_stats` shape, and `dataset_statistics.json` files.

One entry is `{'action': {mean, std, max, min, q01, q99, mask}, 'proprio': {...},
'num_transitions', 'num_trajectories'}` (what the released checkpoints ship). Quantiles are numpy's
default linear interpolation over all steps, as the RLDS pipeline computes them. The mask is True
for the six delta values and False for the gripper, which OpenVLA does not normalize.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    'DEFAULT_ACTION_MASK',
    'compute_action_statistics',
    'read_statistics_file',
    'write_statistics_file',
]

#: Normalize the deltas, keep the absolute gripper value (OpenVLA's bridge_orig mask).
DEFAULT_ACTION_MASK = (True, True, True, True, True, True, False)


def compute_action_statistics(
    actions: np.ndarray,
    *,
    mask: tuple[bool, ...] | None = None,
    num_trajectories: int = 0,
) -> dict[str, Any]:
    """Statistics of an (N, D) action array as one `norm_stats` entry (JSON-ready lists).

    Args:
        actions: (N, D) actions.
        mask: True where a dimension is normalized (default: all but the last).
        num_trajectories: number of episodes, stored as `num_trajectories`.

    Raises:
        ValueError: empty or non-2-D actions, non-finite values, or a mask of the wrong length.
    """
    values = np.asarray(actions, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f'actions must be a non-empty (N, D) array, got shape {values.shape}')
    if not np.all(np.isfinite(values)):
        raise ValueError('actions contain non-finite values')
    dim = values.shape[1]
    if mask is None:
        mask = DEFAULT_ACTION_MASK if dim == 7 else tuple([True] * (dim - 1) + [False])
    if len(mask) != dim:
        raise ValueError(f'mask has {len(mask)} entries for {dim}-D actions')
    action = {
        'mean': values.mean(axis=0).tolist(),
        'std': values.std(axis=0).tolist(),
        'max': values.max(axis=0).tolist(),
        'min': values.min(axis=0).tolist(),
        'q01': np.quantile(values, 0.01, axis=0).tolist(),
        'q99': np.quantile(values, 0.99, axis=0).tolist(),
        'mask': [bool(m) for m in mask],
    }
    zeros = [0.0] * dim
    proprio = {'mean': zeros, 'std': zeros, 'max': zeros, 'min': zeros, 'q01': zeros, 'q99': zeros}
    return {
        'action': action,
        'proprio': proprio,
        'num_transitions': int(values.shape[0]),
        'num_trajectories': int(num_trajectories),
    }


def read_statistics_file(path: str | Path) -> dict[str, Any]:
    """A `dataset_statistics.json` (`{key: entry}`); an absent file reads as `{}`.

    Raises:
        ValueError: the file is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f'cannot read {path}: {exc}') from None
    if not isinstance(data, dict):
        raise ValueError(f'{path} does not hold a JSON object')
    return data


def write_statistics_file(
    path: str | Path, key: str, entry: dict[str, Any], *, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write `{**base, key: entry}` as `dataset_statistics.json`; returns what was written.

    Why keep `base`: loaders replace the checkpoint's norm_stats with this file, so the base
    model's keys (bridge_orig, ...) stay usable beside the new one.
    """
    stats = dict(base or {})
    stats[key] = entry
    Path(path).write_text(json.dumps(stats, indent=2) + '\n')
    return stats
