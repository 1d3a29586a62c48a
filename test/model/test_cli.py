"""The `make-tiny-model` and `predict` verbs, run as a user runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, '-m', 'openvla_ros.cli.main', *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope='module')
def frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('img') / 'frame.png'
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.slow
def test_make_tiny_model_then_predict_json(tmp_path: Path, frame: Path) -> None:
    made = _run('make-tiny-model', str(tmp_path / 'tiny'), '--seed', '0')
    assert made.returncode == 0, made.stderr
    out = _run(
        'predict', '--model', str(tmp_path / 'tiny'), '--image', str(frame),
        '--instruction', 'put the spoon on the towel', '--unnorm-key', 'bridge_orig', '--json',
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result['action']) == 7 and len(result['tokens']) == 7
    assert result['unnorm_key'] == 'bridge_orig' and result['model'] == str(tmp_path / 'tiny')
    assert result['latency_s'] > 0


def test_predict_unknown_key_is_one_line_error(tiny_dir: Path, frame: Path) -> None:
    out = _run(
        'predict', '--model', str(tiny_dir), '--image', str(frame), '--instruction', 'open it',
        '--unnorm-key', 'nope', '--json',
    )  # fmt: skip
    assert out.returncode == 1
    assert 'Traceback' not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('openvla-ros predict: unknown unnorm_key')


def test_predict_missing_image_is_one_line_error(tiny_dir: Path, tmp_path: Path) -> None:
    out = _run(
        'predict', '--model', str(tiny_dir), '--image', str(tmp_path / 'no.png'),
        '--instruction', 'open it',
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip() == f'openvla-ros predict: no image file {tmp_path / "no.png"}'


def test_predict_missing_model_is_one_line_error(tmp_path: Path, frame: Path) -> None:
    out = _run(
        'predict', '--model', str(tmp_path / 'none' / 'x'), '--image', str(frame),
        '--instruction', 'open it',
    )  # fmt: skip
    assert out.returncode == 1
    assert 'Traceback' not in out.stderr
    assert 'no checkpoint directory' in out.stderr
