"""`finetune` under torchrun (gloo on CPU): same global batch -> same loss and weights as one
process; resume at another world size; clear errors for bad set-ups."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
from safetensors.torch import load_file
import torch

from openvla_ros.finetune import FinetuneConfig, FinetuneError
from openvla_ros.finetune.distributed import DistContext, init_distributed, shard_positions

TIMEOUT = 600


def _args(tiny: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        'finetune',
        '--model', str(tiny),
        '--data', str(data),
        '--out', str(out),
        '--steps', '3',
        '--batch-size', '4',
        '--grad-accum', '2',
        '--lr', '5e-3',
        '--lora-rank', '4',
        '--save-every', '0',
        '--val-fraction', '0.5',
        '--augment', 'camera',
        '--json',
        *extra,
    ]  # fmt: skip


def _run(args: list[str], nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    if nproc == 1:
        cmd = [sys.executable, '-m', 'openvla_ros.cli.main', *args]
    else:
        cmd = [
            sys.executable, '-m', 'torch.distributed.run', '--standalone',
            '--nproc-per-node', str(nproc), '-m', 'openvla_ros.cli.main', *args,
        ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _losses(out: Path) -> list[float]:
    summary = json.loads((out / 'finetune.json').read_text())
    return [record['loss'] for record in summary['history']['train']]


def _assert_same_tensors(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=atol, msg=name)


def test_torchrun_two_ranks_match_one_process_on_the_same_global_batch(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    single, multi = tmp_path / 'single', tmp_path / 'multi'
    _run(_args(tiny_model_dir, recorded_dataset, single))
    result = _run(_args(tiny_model_dir, recorded_dataset, multi), nproc=2)
    assert json.loads(result.stdout.strip().splitlines()[-1])['world_size'] == 2
    assert len(_losses(multi)) == 3
    torch.testing.assert_close(_losses(multi), _losses(single), rtol=1e-4, atol=1e-5)
    _assert_same_tensors(
        load_file(str(multi / 'adapter_model.safetensors')),
        load_file(str(single / 'adapter_model.safetensors')),
        atol=1e-5,
    )
    # rank 0 alone wrote: one final checkpoint, no temporary files left
    assert [p.name for p in (multi / 'checkpoints').iterdir()] == ['step_000003']
    assert not list(multi.rglob('*.tmp'))


def test_resume_at_another_world_size_continues_the_same_run(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    whole, split = tmp_path / 'whole', tmp_path / 'split'
    args = _args(tiny_model_dir, recorded_dataset, whole)
    _run([*args[: args.index('--steps') + 1], '4', *args[args.index('--steps') + 2 :]])
    part = _args(tiny_model_dir, recorded_dataset, split)
    _run([*part[: part.index('--steps') + 1], '2', *part[part.index('--steps') + 2 :]], nproc=2)
    result = _run(
        [*part[: part.index('--steps') + 1], '4', *part[part.index('--steps') + 2 :], '--resume']
    )
    assert json.loads(result.stdout.strip().splitlines()[-1])['resumed_from'].endswith(
        'step_000002'
    )
    torch.testing.assert_close(_losses(split), _losses(whole), rtol=1e-4, atol=1e-5)
    _assert_same_tensors(
        load_file(str(split / 'adapter_model.safetensors')),
        load_file(str(whole / 'adapter_model.safetensors')),
        atol=1e-5,
    )


def test_fsdp_full_parameter_run_matches_one_process(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    single, multi = tmp_path / 'single', tmp_path / 'multi'
    extra = ('--full', '--lr', '1e-3')
    _run(_args(tiny_model_dir, recorded_dataset, single, *extra))
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2',
        '-m', 'openvla_ros.cli.main',
        *_args(tiny_model_dir, recorded_dataset, multi, *extra, '--fsdp'),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    if result.returncode != 0 and 'fully_shard' in result.stderr and 'cpu' in result.stderr:
        pytest.skip('FSDP does not run on the CPU/gloo here: ' + result.stderr.splitlines()[-1])
    assert result.returncode == 0, result.stderr[-3000:]
    torch.testing.assert_close(_losses(multi), _losses(single), rtol=1e-4, atol=1e-5)
    name = 'checkpoints/step_000003/model_state.safetensors'
    got, want = load_file(str(multi / name)), load_file(str(single / name))
    # A ViT's key bias gets an exactly-zero gradient (softmax ignores a shift shared by all
    # keys); AdamW turns its round-off into steps of about lr, so it is compared at that scale.
    for key in [k for k in want if k.endswith('attn.qkv.bias')]:
        third = want[key].numel() // 3
        k_got, k_want = got[key][third : 2 * third], want[key][third : 2 * third]
        torch.testing.assert_close(k_got, k_want, rtol=0, atol=3 * 1e-3, msg=key)
        for tensors in (got, want):
            tensors[key] = torch.cat([tensors[key][:third], tensors[key][2 * third :]])
    _assert_same_tensors(got, want, atol=1e-5)
    # the gathered result is an ordinary checkpoint directory
    assert (multi / 'config.json').is_file() and (multi / 'model.safetensors.index.json').is_file()


def test_uneven_global_batch_fails_with_one_line() -> None:
    dist = DistContext(rank=1, world_size=2, backend='gloo')
    assert shard_positions(3, 4, dist) == [13, 15]
    with pytest.raises(FinetuneError, match='does not split evenly over 2 ranks'):
        shard_positions(0, 3, dist)


def test_nccl_on_the_cpu_fails_before_joining(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('LOCAL_RANK', '0')
    with pytest.raises(FinetuneError, match='NCCL backend needs CUDA'):
        init_distributed('cpu', 'nccl')


def test_single_process_needs_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    dist, device = init_distributed('cpu')
    assert (dist.world_size, dist.is_main, device) == (1, True, 'cpu')
    assert not torch.distributed.is_initialized()


def test_fsdp_needs_full_parameter_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='LoRA runs use DDP'):
        FinetuneConfig(model='m', data='d', out=str(tmp_path), fsdp=True)


def test_resume_with_another_mode_is_refused(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'run'
    args = _args(tiny_model_dir, recorded_dataset, out)
    _run([*args[: args.index('--steps') + 1], '1', *args[args.index('--steps') + 2 :]])
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    result = subprocess.run(
        [sys.executable, '-m', 'openvla_ros.cli.main', *args, '--resume', '--full'],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('openvla-ros finetune: cannot resume from')
    assert 'full: checkpoint False vs now True' in result.stderr


def test_full_parameter_resume_at_another_world_size(
    tiny_model_dir: Path, recorded_dataset: Path, tmp_path: Path
) -> None:
    """Full training resumes too, although the towers' unused last blocks hold no optimizer
    state (OpenVLA reads the penultimate block)."""
    whole, split = tmp_path / 'whole', tmp_path / 'split'
    extra = ('--full', '--lr', '1e-3')

    def steps(out: Path, count: str, *more: str) -> list[str]:
        args = _args(tiny_model_dir, recorded_dataset, out, *extra, *more)
        at = args.index('--steps') + 1
        return [*args[:at], count, *args[at + 1 :]]

    _run(steps(whole, '4'))
    _run(steps(split, '2', '--save-every', '2'), nproc=2)
    _run(steps(split, '4', '--resume'))
    torch.testing.assert_close(_losses(split), _losses(whole), rtol=1e-4, atol=1e-5)
