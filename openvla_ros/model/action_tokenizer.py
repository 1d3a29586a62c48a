"""Action tokens <-> normalized actions, and normalized <-> robot actions with dataset statistics.

Matches `prismatic/vla/action_tokenizer.py` (training side) and `predict_action` in
`modeling_prismatic.py` (inference side): 256 uniform bins on [-1, 1], the action tokens are the
last 256 ids of the 32000-piece Llama-2 vocabulary, counted down from the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from openvla_ros.model import constants as const
from openvla_ros.model.errors import InvalidConfigError, UnnormKeyError

#: dlimp's BOUNDS_Q99 normalization adds this to the range to avoid dividing by zero.
_NORMALIZE_EPS = 1e-8


class ActionTokenizer:
    """Discretizes normalized actions into token ids and back.

    Args:
        vocab_size: the text vocabulary without padding rows (32000 for OpenVLA).
        n_bins: number of bin edges (256).
        min_action: lower clip bound of normalized actions.
        max_action: upper clip bound of normalized actions.

    Raises:
        ValueError: `n_bins` < 2 or `vocab_size` too small to hold the action tokens.
    """

    def __init__(
        self,
        vocab_size: int = const.LLAMA2_VOCAB_SIZE,
        n_bins: int = const.N_ACTION_BINS,
        min_action: float = const.MIN_ACTION,
        max_action: float = const.MAX_ACTION,
    ) -> None:
        if n_bins < 2:
            raise ValueError(f'n_bins must be >= 2, got {n_bins}')
        if vocab_size <= n_bins:
            raise ValueError(f'vocab_size={vocab_size} must exceed n_bins={n_bins}')
        self.vocab_size = int(vocab_size)
        self.n_bins = int(n_bins)
        self.min_action = float(min_action)
        self.max_action = float(max_action)
        self.bins = np.linspace(min_action, max_action, n_bins)  # (n_bins,) float64
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0  # (n_bins - 1,)

    @property
    def action_token_begin_idx(self) -> int:
        """Largest id that is *not* an action token (31743 for OpenVLA)."""
        return self.vocab_size - (self.n_bins + 1)

    def encode(self, normalized_actions: np.ndarray | Sequence[float]) -> np.ndarray:
        """Normalized actions -> token ids (training-side tokenization).

        `clip(a, -1, 1)`, `np.digitize(a, bins)`, token = `vocab_size - digitized`.
        """
        actions = np.clip(
            np.asarray(normalized_actions, dtype=np.float64), self.min_action, self.max_action
        )
        return (self.vocab_size - np.digitize(actions, self.bins)).astype(np.int64)

    def decode(self, token_ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Token ids -> normalized actions in [-1, 1] (float64), exactly as `predict_action`.

        Ids outside the action range are clipped to the nearest bin centre (`clip(vocab - id - 1,
        0, 254)`), so any id decodes: a text token decodes to +0.99609375 (the top bin), a
        padding-row id (>= vocab_size) to -0.99609375 (the bottom bin).
        """
        ids = np.asarray(token_ids, dtype=np.int64)
        discretized = np.clip(self.vocab_size - ids - 1, 0, self.bin_centers.shape[0] - 1)
        return self.bin_centers[discretized]


@dataclass(frozen=True)
class ActionStats:
    """The action statistics of one dataset key (`norm_stats[key]['action']`).

    Args:
        q01: 1st percentile per dimension.
        q99: 99th percentile per dimension.
        mask: True where the dimension is normalized (the gripper is not).
    """

    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray

    @classmethod
    def from_dict(cls, stats: Mapping[str, Any], *, key: str = '?') -> ActionStats:
        """Read `{'q01', 'q99', 'mask'?, ...}`; a missing mask means all True, as in
        `predict_action`.

        Raises:
            InvalidConfigError: q01/q99 are missing, of different lengths, or not finite.
        """
        try:
            q01 = np.asarray(stats['q01'], dtype=np.float64)
            q99 = np.asarray(stats['q99'], dtype=np.float64)
        except KeyError as exc:
            raise InvalidConfigError(f'norm_stats[{key!r}]["action"] lacks {exc}') from None
        mask = np.asarray(stats.get('mask', np.ones_like(q01, dtype=bool)), dtype=bool)
        if q01.ndim != 1 or q01.shape != q99.shape or q01.shape != mask.shape:
            raise InvalidConfigError(
                f'norm_stats[{key!r}]["action"]: q01 {q01.shape}, q99 {q99.shape} and '
                f'mask {mask.shape} '
                'must be 1-D of equal length'
            )
        if not (np.all(np.isfinite(q01)) and np.all(np.isfinite(q99))):
            raise InvalidConfigError(f'norm_stats[{key!r}]["action"] has non-finite q01/q99')
        return cls(q01=q01, q99=q99, mask=mask)

    @property
    def action_dim(self) -> int:
        """Number of action dimensions (7 for OpenVLA)."""
        return int(self.q01.shape[0])


def unnormalize(normalized: np.ndarray, stats: ActionStats) -> np.ndarray:
    """Normalized action in [-1, 1] -> robot action (float64).

    `a = 0.5 * (a_norm + 1) * (q99 - q01) + q01` where `mask`, else `a = a_norm` (the gripper).

    Raises:
        ValueError: the action length differs from the statistics'.
    """
    normalized = np.asarray(normalized, dtype=np.float64)
    if normalized.shape[-1] != stats.action_dim:
        raise ValueError(
            f'action has {normalized.shape[-1]} dims, statistics have {stats.action_dim}'
        )
    scaled = 0.5 * (normalized + 1.0) * (stats.q99 - stats.q01) + stats.q01
    return np.where(stats.mask, scaled, normalized)


def normalize(action: np.ndarray, stats: ActionStats) -> np.ndarray:
    """Robot action -> normalized action in [-1, 1] (dlimp's BOUNDS_Q99, used for training labels).

    `clip(2 * (a - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)` where `mask`, else unchanged.

    Raises:
        ValueError: the action length differs from the statistics'.
    """
    action = np.asarray(action, dtype=np.float64)
    if action.shape[-1] != stats.action_dim:
        raise ValueError(f'action has {action.shape[-1]} dims, statistics have {stats.action_dim}')
    scaled = np.clip(
        2.0 * (action - stats.q01) / (stats.q99 - stats.q01 + _NORMALIZE_EPS) - 1.0, -1.0, 1.0
    )
    return np.where(stats.mask, scaled, action)


def resolve_unnorm_key(norm_stats: Mapping[str, Any] | None, key: str | None) -> str:
    """Choose the dataset statistics key, as `_check_unnorm_key` does but with clear errors.

    Args:
        norm_stats: `{dataset_key: {'action': {...}}}` from the checkpoint.
        key: the requested key, or None to use the only one.

    Raises:
        UnnormKeyError: the checkpoint has no statistics, the key is unknown (the message lists the
            available keys), or no key was given and there are several.
    """
    available = sorted(norm_stats or {})
    if not available:
        raise UnnormKeyError(
            'the checkpoint has no norm_stats / dataset_statistics.json: cannot un-normalize'
        )
    if key is None:
        if len(available) != 1:
            raise UnnormKeyError(
                f'the model was trained on {len(available)} datasets; pass an unnorm_key, one of: '
                + ', '.join(available)
            )
        return available[0]
    if key not in available:
        raise UnnormKeyError(
            f'unknown unnorm_key {key!r}; available keys: ' + ', '.join(available)
        )
    return key
