"""`openvla-ros bench`: each mode timed on the same weights, agreement with the reference, JSON."""

from __future__ import annotations

import json

from openvla_ros.cli.main import main as cli


def test_bench_reports_both_modes_against_the_reference_as_json(capsys):
    assert cli(['bench', '--model', 'random-tiny', '--unnorm-key', 'bridge_orig', '--n', '3',
                '--warmup', '1', '--json']) == 0
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    modes = {r['mode']: r for r in report['results']}
    assert set(modes) == {'reference', 'fast'}
    assert modes['reference']['agreement'] is None and modes['fast']['agreement'] == 1.0
    assert all(r['n'] == 3 and r['p50_s'] > 0 and r['actions_per_s'] > 0 for r in modes.values())
    assert report['environment']['device'] == 'cpu' and report['environment']['torch']
    assert '| reference | 3 |' in out and '| fast | 3 |' in out


def test_bench_refuses_unknown_modes_and_models_in_one_line(capsys, tmp_path):
    assert cli(['bench', '--model', 'random-tiny', '--modes', 'turbo']) == 1
    assert 'unknown --modes' in capsys.readouterr().err
    assert cli(['bench', '--model', str(tmp_path / 'nothing-here')]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'openvla-ros bench:' in err
