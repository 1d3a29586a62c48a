"""The small models' position-embedding start: MAE's 2-D sine-cosine table, smooth in the patch
grid, written into both ViTs and nothing else."""

from __future__ import annotations

import dataclasses
import glob
import json

import numpy as np
import pytest
from safetensors.torch import load_file
import torch

from openvla_ros.finetune.small_model import make_small_model, sincos_2d, SMALL_SPECS
from openvla_ros.model.tiny import make_tiny_model

POS_EMBEDS = (
    'vision_backbone.featurizer.pos_embed',
    'vision_backbone.fused_featurizer.pos_embed',
)


def _weights(directory) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for shard in glob.glob(f'{directory}/*.safetensors'):
        state.update(load_file(shard))
    return state


def test_the_sincos_table_is_closer_between_neighbouring_patches_than_distant_ones():
    table = sincos_2d(8, 32).reshape(8, 8, 32)
    assert table.shape == (8, 8, 32) and np.isfinite(table).all()
    near = np.linalg.norm(table[3, 3] - table[3, 4])
    far = np.linalg.norm(table[3, 3] - table[3, 7])
    down = np.linalg.norm(table[3, 3] - table[4, 3])
    assert near < far and down < np.linalg.norm(table[3, 3] - table[7, 3])
    # rows and columns are told apart: a step down is not a step right
    assert not np.allclose(table[4, 3], table[3, 4])
    assert len({tuple(np.round(v, 5)) for v in table.reshape(64, 32)}) == 64


def test_the_sincos_table_needs_a_width_divisible_by_4():
    with pytest.raises(ValueError, match='divisible by 4'):
        sincos_2d(4, 30)


def test_a_small_model_starts_with_the_sincos_table_in_both_vits_and_the_rest_as_before(tmp_path):
    sincos = make_small_model(tmp_path / 'sincos', 'micro', seed=3)
    random = make_small_model(
        tmp_path / 'random',
        dataclasses.replace(SMALL_SPECS['micro'], pos_embed_init='random'),
        seed=3,
    )
    a, b = _weights(sincos), _weights(random)
    assert a.keys() == b.keys()
    grid = SMALL_SPECS['micro'].image_size // 14
    expected = torch.from_numpy(sincos_2d(grid, 32)).to(torch.bfloat16)
    for name in POS_EMBEDS:
        assert torch.equal(a[name][0], expected), name
        assert float(b[name].float().std()) < 0.05  # the old 0.02-scale noise
    assert all(torch.equal(a[k], b[k]) for k in a if k not in POS_EMBEDS)
    assert json.loads((sincos / 'small_model.json').read_text())['pos_embed_init'] == 'sincos'


def test_the_random_start_is_the_tiny_models_weights_so_earlier_runs_rebuild_the_same(tmp_path):
    spec = dataclasses.replace(SMALL_SPECS['micro'], pos_embed_init='random')
    small = make_small_model(tmp_path / 'small', spec, seed=1)
    tiny = make_tiny_model(
        tmp_path / 'tiny', seed=1, spec=spec.widths, norm_stats={}, image_size=spec.image_size
    )
    a, b = _weights(small), _weights(tiny)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_unknown_position_embedding_start_is_refused(tmp_path):
    spec = dataclasses.replace(SMALL_SPECS['micro'], pos_embed_init='learned')
    with pytest.raises(ValueError, match='pos_embed_init'):
        make_small_model(tmp_path / 'x', spec)
    assert not (tmp_path / 'x').exists()
