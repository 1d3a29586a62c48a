"""Action tokens <-> normalized actions <-> robot actions, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from openvla_ros.model.action_tokenizer import (
    ActionStats,
    ActionTokenizer,
    normalize,
    resolve_unnorm_key,
    unnormalize,
)
from openvla_ros.model.errors import InvalidConfigError, UnnormKeyError

STATS = ActionStats.from_dict(
    {'q01': [-1.0, 0.0, 2.0], 'q99': [1.0, 4.0, 3.0], 'mask': [True, True, False]}
)


def test_decode_matches_hand_computed_bin_centers() -> None:
    tok = ActionTokenizer()
    # token 31999 -> d = 32000 - 31999 - 1 = 0 -> centre of bin 0 = (-1 + (-1 + 2/255)) / 2
    assert tok.decode([31999])[0] == pytest.approx(-1 + 1 / 255)
    # token 31744 -> d = 255 -> clipped to 254 -> last centre = 1 - 1/255
    assert tok.decode([31744])[0] == pytest.approx(1 - 1 / 255)
    # token 31872 -> d = 127 -> centre = -1 + (2 * 127 + 1) / 255
    assert tok.decode([31872])[0] == pytest.approx(-1 + 255 / 255 * (2 * 127 + 1) / 255)


def test_decode_clips_tokens_outside_the_action_range() -> None:
    tok = ActionTokenizer()
    text_token, pad_row_token = 29871, 32010
    assert tok.decode([text_token])[0] == pytest.approx(1 - 1 / 255)  # top bin
    assert tok.decode([pad_row_token])[0] == pytest.approx(-1 + 1 / 255)  # bottom bin


def test_encode_then_decode_stays_within_one_bin() -> None:
    tok = ActionTokenizer()
    actions = np.linspace(-1, 1, 101)
    decoded = tok.decode(tok.encode(actions))
    assert np.max(np.abs(decoded - actions)) <= 2 / 255 + 1e-12


def test_encode_clips_out_of_range_actions() -> None:
    tok = ActionTokenizer()
    assert tok.encode([5.0])[0] == tok.encode([1.0])[0]
    assert tok.encode([-5.0])[0] == tok.encode([-1.0])[0]


def test_unnormalize_matches_hand_computed_values() -> None:
    action = unnormalize(np.array([0.0, -1.0, 0.25]), STATS)
    # 0.5 * (a + 1) * (q99 - q01) + q01 where mask, else a
    assert action.tolist() == pytest.approx([0.0, 0.0, 0.25])
    assert unnormalize(np.array([1.0, 1.0, 1.0]), STATS).tolist() == pytest.approx([1.0, 4.0, 1.0])


def test_normalize_inverts_unnormalize_inside_the_range() -> None:
    normalized = np.array([0.3, -0.7, 0.9])
    back = normalize(unnormalize(normalized, STATS), STATS)
    assert back == pytest.approx(normalized, abs=1e-7)


def test_unnormalize_raises_for_wrong_length() -> None:
    with pytest.raises(ValueError, match='action has 2 dims, statistics have 3'):
        unnormalize(np.zeros(2), STATS)


def test_missing_mask_means_all_dimensions_are_normalized() -> None:
    stats = ActionStats.from_dict({'q01': [0.0], 'q99': [2.0]})
    assert unnormalize(np.array([0.0]), stats).tolist() == [1.0]


def test_stats_raise_for_missing_quantiles() -> None:
    with pytest.raises(InvalidConfigError, match="lacks 'q99'"):
        ActionStats.from_dict({'q01': [0.0]}, key='bridge_orig')


def test_stats_raise_for_unequal_lengths() -> None:
    with pytest.raises(InvalidConfigError, match='must be 1-D of equal length'):
        ActionStats.from_dict({'q01': [0.0, 1.0], 'q99': [1.0]})


def test_resolve_uses_the_only_dataset_without_a_key() -> None:
    assert resolve_unnorm_key({'bridge_orig': {}}, None) == 'bridge_orig'


def test_decode_raises_for_unknown_unnorm_key() -> None:
    with pytest.raises(UnnormKeyError, match='unknown unnorm_key .nope.; available keys: a, b'):
        resolve_unnorm_key({'b': {}, 'a': {}}, 'nope')


def test_resolve_raises_without_key_for_several_datasets() -> None:
    with pytest.raises(
        UnnormKeyError, match='trained on 2 datasets; pass an unnorm_key, one of: a, b'
    ):
        resolve_unnorm_key({'a': {}, 'b': {}}, None)


def test_resolve_raises_without_statistics() -> None:
    with pytest.raises(UnnormKeyError, match='no norm_stats'):
        resolve_unnorm_key({}, None)
