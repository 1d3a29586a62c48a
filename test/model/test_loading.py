"""Checkpoint layout, strict loading with the real key names, and every loading error."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import pytest
from safetensors.torch import load_file, save_file

from openvla_ros.model import constants as const
from openvla_ros.model.configuration import OpenVLAConfig
from openvla_ros.model.errors import (
    CorruptShardError,
    InvalidConfigError,
    MissingConfigError,
    MissingShardError,
    MissingTokenizerError,
    ModelNotFoundError,
    StateDictMismatchError,
)
from openvla_ros.model.loading import load_model, read_state_dict, resolve_model_dir
from openvla_ros.model.tiny import build_tiny_model, weights_sha256

#: Key names of the released openvla-7b shards (official module tree; see test/fixtures README).
CHECKPOINT_KEYS = [
    'vision_backbone.featurizer.cls_token',
    'vision_backbone.featurizer.reg_token',
    'vision_backbone.featurizer.pos_embed',
    'vision_backbone.featurizer.patch_embed.proj.weight',
    'vision_backbone.featurizer.blocks.0.ls1.scale_factor',
    'vision_backbone.featurizer.blocks.0.ls2.scale_factor',
    'vision_backbone.featurizer.blocks.0.attn.qkv.weight',
    'vision_backbone.featurizer.norm.weight',
    'vision_backbone.fused_featurizer.pos_embed',
    'vision_backbone.fused_featurizer.attn_pool.latent',
    'vision_backbone.fused_featurizer.attn_pool.kv.weight',
    'vision_backbone.fused_featurizer.attn_pool.mlp.fc2.bias',
    'vision_backbone.fused_featurizer.blocks.0.mlp.fc1.weight',
    'projector.fc1.weight',
    'projector.fc2.bias',
    'projector.fc3.weight',
    'language_model.model.embed_tokens.weight',
    'language_model.model.layers.0.self_attn.q_proj.weight',
    'language_model.model.layers.1.mlp.down_proj.weight',
    'language_model.model.norm.weight',
    'language_model.lm_head.weight',
]


def _copy(tiny_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / 'ckpt'
    shutil.copytree(tiny_dir, target)
    return target


def test_tiny_checkpoint_has_the_openvla_layout(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {
        'config.json',
        'preprocessor_config.json',
        'dataset_statistics.json',
        'model.safetensors.index.json',
        'tokenizer.json',
        'tokenizer_config.json',
        'special_tokens_map.json',
    } <= names
    shards = sorted(n for n in names if n.endswith('.safetensors'))
    assert shards == [f'model-0000{i}-of-00003.safetensors' for i in (1, 2, 3)]
    assert sum(p.stat().st_size for p in tiny_dir.iterdir()) < 20 * 2**20
    config = json.loads((tiny_dir / 'config.json').read_text())
    assert config['model_type'] == 'openvla'
    assert config['text_config']['vocab_size'] == 32064
    assert set(config['norm_stats']) == {'bridge_orig', 'fractal20220817_data'}


def test_state_dict_uses_the_checkpoint_key_names(tiny_dir: Path) -> None:
    state = read_state_dict(tiny_dir, progress=False)
    assert set(CHECKPOINT_KEYS) <= set(state)
    assert not any('gamma' in key for key in state)


def test_save_load_round_trip_is_exact_and_strict(tiny_dir: Path) -> None:
    built = build_tiny_model(seed=0)
    loaded = load_model(tiny_dir, progress=False).model
    assert weights_sha256(loaded.state_dict()) == weights_sha256(built.state_dict())
    assert set(loaded.state_dict()) == set(built.state_dict())


def test_same_seed_gives_identical_weights_and_other_seeds_differ() -> None:
    first = weights_sha256(build_tiny_model(seed=1).state_dict())
    assert first == weights_sha256(build_tiny_model(seed=1).state_dict())
    assert first != weights_sha256(build_tiny_model(seed=2).state_dict())


def test_config_json_round_trips(tiny_dir: Path) -> None:
    config = OpenVLAConfig.from_json_file(tiny_dir / 'config.json')
    assert OpenVLAConfig.from_dict(config.to_dict()) == config
    assert config.action_vocab_size == 32000


def test_config_raises_for_unfused_backbone(tiny_dir: Path) -> None:
    data = json.loads((tiny_dir / 'config.json').read_text())
    data['use_fused_vision_backbone'] = False
    with pytest.raises(InvalidConfigError, match='use_fused_vision_backbone=False'):
        OpenVLAConfig.from_dict(data)


def test_load_raises_for_missing_config(tiny_dir: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny_dir, tmp_path)
    (ckpt / 'config.json').unlink()
    with pytest.raises(MissingConfigError, match='no config.json in'):
        load_model(ckpt, progress=False)


def test_load_raises_for_missing_shard(tiny_dir: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny_dir, tmp_path)
    (ckpt / 'model-00002-of-00003.safetensors').unlink()
    with pytest.raises(MissingShardError, match='model-00002-of-00003.safetensors'):
        load_model(ckpt, progress=False)


def test_load_raises_for_corrupt_shard(tiny_dir: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny_dir, tmp_path)
    shard = ckpt / 'model-00001-of-00003.safetensors'
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(CorruptShardError, match='cannot read shard model-00001-of-00003'):
        load_model(ckpt, progress=False)


def test_load_raises_without_weights(tiny_dir: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny_dir, tmp_path)
    for path in ckpt.glob('model*'):
        path.unlink()
    with pytest.raises(MissingShardError, match='no model.safetensors.index.json or'):
        load_model(ckpt, progress=False)


def test_load_raises_for_missing_tokenizer(tiny_dir: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny_dir, tmp_path)
    (ckpt / 'tokenizer.json').unlink()
    with pytest.raises(MissingTokenizerError, match='no tokenizer.json or tokenizer.model'):
        load_model(ckpt, progress=False)


def test_load_raises_for_missing_and_unexpected_keys(tiny_dir: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny_dir, tmp_path)
    shard = ckpt / 'model-00003-of-00003.safetensors'
    tensors = load_file(shard)
    name = sorted(tensors)[0]
    tensors[name.replace('scale_factor', 'gamma') + '_renamed'] = tensors.pop(name)
    save_file(tensors, shard, metadata={'format': 'pt'})
    with pytest.raises(StateDictMismatchError, match=r'1 missing key\(s\).*1 unexpected key\(s\)'):
        load_model(ckpt, progress=False)


def test_hub_id_raises_offline_when_not_cached(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path))
    with pytest.raises(
        ModelNotFoundError, match='offline .HF_HUB_OFFLINE=1., not in the local cache'
    ):
        resolve_model_dir('openvla/openvla-7b-does-not-exist')


def test_missing_local_path_raises_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match='no checkpoint directory'):
        resolve_model_dir(str(tmp_path / 'nope' / 'deeper'))


def test_tokenizer_asset_is_the_single_in_repo_copy() -> None:
    for name in const.TOKENIZER_FILES:
        assert (const.TOKENIZER_DIR / name).is_file()
    assert (const.TOKENIZER_DIR / 'PROVENANCE.md').is_file()
