"""Every verb reports a known bad input as ONE stderr line, `openvla-ros <verb>: <message>`, and
exits 1.

Each case fails in the verb's argument checks: no model is loaded and no simulator starts.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

from openvla_ros.cli.errors import CliError
from openvla_ros.cli.main import error_line, VERBS
from openvla_ros.cli.main import main as cli

REPO = Path(__file__).resolve().parents[2]


def _make_bag_dir(tmp: Path, name: str) -> None:
    (tmp / name).mkdir(parents=True)


def _make_file(tmp: Path, name: str) -> None:
    (tmp / name).write_text('not a directory')


# (verb, argv after the verb with {tmp} for tmp_path, what to create first, start of the message)
CASES = [
    ('make-tiny-model', ['{tmp}/tiny', '--seed', '-1'], None, '--seed must be >= 0, got -1'),
    (
        'make-tiny-model',
        ['{tmp}/taken'],
        (_make_file, 'taken'),
        '{tmp}/taken exists and is not a directory',
    ),
    (
        'predict',
        ['--model', '{tmp}/m', '--image', '{tmp}/no.png', '--instruction', 'pick it up'],
        None,
        'no image file {tmp}/no.png',
    ),
    (
        'predict',
        ['--model', '{tmp}/m', '--image', '{tmp}/f.png', '--instruction', ' '],
        (_make_file, 'f.png'),
        '--instruction is empty',
    ),
    (
        'demo',
        ['widowx_bridge', '--out', '{tmp}'],
        (_make_bag_dir, 'widowx_bridge_default_scripted_seed0_bag'),
        '{tmp}/widowx_bridge_default_scripted_seed0_bag exists; remove it or choose another --out',
    ),
    (
        'demo',
        ['widowx_bridge', '--task', 'juggle', '--out', '{tmp}'],
        None,
        "unknown task 'juggle'",
    ),
    (
        'demo',
        ['widowx_bridge', '--policy', 'learned', '--task', 'spoon_on_towel', '--out', '{tmp}'],
        None,
        "no learned checkpoint ships for task 'spoon_on_towel'",
    ),
    ('evaluate', ['widowx_bridge', '--episodes', '0'], None, '--episodes must be >= 1, got 0'),
    (
        'evaluate',
        ['widowx_bridge', '--task', 'lift_block', '--episodes', '3', '--record', '{tmp}'],
        (_make_bag_dir, 'widowx_bridge_lift_block_seed2'),
        '{tmp}/widowx_bridge_lift_block_seed2 exists; choose another --record directory',
    ),
    (
        'evaluate',
        ['franka_tabletop', '--task', 'carrot_on_plate', '--video', '{tmp}'],
        None,
        "unknown task 'carrot_on_plate' for robot",
    ),
    (
        'evaluate',
        ['widowx_bridge', '--policy', 'openvla', '--model', '{tmp}/none', '--record', '{tmp}'],
        None,
        "no checkpoint directory '{tmp}/none'",
    ),
    ('record', ['--bag', '{tmp}/none', '--out', '{tmp}/ds'], None, 'no bag at {tmp}/none'),
    (
        'record',
        ['--bag', '{tmp}/bag', '--out', '{tmp}/ds', '--profile', 'no_such_profile'],
        (_make_bag_dir, 'bag'),
        "unknown profile 'no_such_profile'",
    ),
    (
        'finetune',
        ['--model', '{tmp}/m', '--data', '{tmp}/none', '--out', '{tmp}/run'],
        None,
        'no dataset directory {tmp}/none',
    ),
    ('serve', ['--model', 'x', '--port', '0'], None, '--port must be 1..65535, got 0'),
    ('serve', ['--model', 'x', '--max-batch', '0'], None, '--max-batch must be >= 1, got 0'),
    ('bench', ['--model', 'random-tiny', '--modes', 'turbo'], None, "unknown --modes ['turbo']"),
    ('bench', ['--model', 'random-tiny', '--n', '0'], None, '--n must be >= 1, got 0'),
    (
        'learn',
        ['widowx_bridge', '--out', '{tmp}/run', '--demos', '0'],
        None,
        'demos must be >= 1, got 0',
    ),
]


@pytest.mark.parametrize(
    'verb,argv,setup,message', CASES, ids=[f'{c[0]}-{i}' for i, c in enumerate(CASES)]
)
def test_a_bad_input_is_one_prefixed_stderr_line_and_exit_1(
    verb, argv, setup, message, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # anything written to a default relative path stays in tmp_path
    if setup is not None:
        setup[0](tmp_path, setup[1])
    code = cli([verb, *(a.format(tmp=tmp_path) for a in argv)])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert 'Traceback' not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f'openvla-ros {verb}: {message.format(tmp=tmp_path)}'), lines[0]
    assert not lines[0].startswith(f'openvla-ros {verb}: {verb}:'), 'prefixed twice'
    assert out == '', out  # nothing ran, so nothing was reported on stdout


def test_every_verb_has_a_case() -> None:
    assert {case[0] for case in CASES} == set(VERBS)


def test_the_error_line_is_the_first_line_or_the_type_of_the_cause() -> None:
    assert error_line(CliError('first\nsecond')) == 'first'
    try:
        try:
            raise KeyError()
        except KeyError as exc:
            raise CliError('') from exc
    except CliError as exc:
        assert error_line(exc) == 'KeyError'


def _run(*argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE='1')
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def test_the_installed_command_prints_one_prefixed_line(tmp_path) -> None:
    script = Path(sys.executable).with_name('openvla-ros')
    if not script.is_file():
        pytest.fail(f'no console script {script}: install the package into this environment')
    done = _run(str(script), 'make-tiny-model', str(tmp_path / 'tiny'), '--seed', '-1')
    assert done.returncode == 1
    assert done.stderr == 'openvla-ros make-tiny-model: --seed must be >= 0, got -1\n'


def test_python_m_serve_goes_through_the_same_error_path() -> None:
    done = _run(sys.executable, '-m', 'openvla_ros.cli.serve', '--model', 'x', '--port', '0')
    assert done.returncode == 1
    assert done.stderr == 'openvla-ros serve: --port must be 1..65535, got 0\n'
