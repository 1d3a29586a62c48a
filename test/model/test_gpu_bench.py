"""`scripts/gpu_bench.sh --cpu-rehearsal`: the GPU run's script, phases and checks, on the CPU.

The rehearsal installs a carried wheel into a scratch target exactly as on the GPU machine (here a
throw-away wheel built by the test), runs every phase on the tiny model and writes the JSON and the
table. A failing check must make the script exit non-zero after writing its outputs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
import subprocess
import zipfile

import pytest

from openvla_ros.metrics import gpu_bench

ROOT = Path(__file__).resolve().parents[2]
PROBE = 'openvla_carry_probe'


def _wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel (what `pip download` would have carried)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f'{PROBE}-0.1-py3-none-any.whl'
    info = f'{PROBE}-0.1.dist-info'
    files = {
        f'{PROBE}/__init__.py': b'CARRIED = True\n',
        f'{info}/METADATA': f'Metadata-Version: 2.1\nName: {PROBE}\nVersion: 0.1\n'.encode(),
        f'{info}/WHEEL': b'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n'
                         b'Tag: py3-none-any\n',
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
        record.append(f'{name},sha256={digest},{len(data)}')
    record.append(f'{info}/RECORD,,')
    files[f'{info}/RECORD'] = ('\n'.join(record) + '\n').encode()
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(scope='module')
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess,
                                                                  Path]:
    base = tmp_path_factory.mktemp('gpu_bench')
    _wheel(base / 'wheels')
    out = base / 'out'
    proc = subprocess.run(
        [str(ROOT / 'scripts' / 'gpu_bench.sh'), '--cpu-rehearsal', '--out', str(out),
         '--wheels', str(base / 'wheels'), '--', '--expect-import', PROBE],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    return proc, out


def test_rehearsal_passes_every_check_and_fills_every_row(rehearsal) -> None:
    proc, out = rehearsal
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / 'gpu_bench.json').read_text())
    assert report['failures'] == [] and report['errors'] == []
    rows = {(r['path'].split(' ')[0], r['precision'], r['batch']) for r in report['rows']}
    for path in ('reference', 'fast', 'graph'):
        assert (path, 'float32', 1) in rows
    for batch in (1, 4, 8, 16):
        assert ('predict_batch', 'float32', batch) in rows
    for mode in ('int8', 'int4'):
        assert ('graph', mode, 1) in rows and ('predict_batch', mode, 8) in rows
    graph = next(r for r in report['rows'] if r['path'].startswith('graph')
                 and r['precision'] == 'float32')
    assert graph['token_agreement'] == 1.0 and graph['actions_per_s'] > 0
    names = {c['name'] for c in report['checks']}
    assert 'bf16 graph vs reference' in names and 'bf16 fast vs reference' in names
    assert {'int8 model logits vs bf16', 'int4 model logits vs bf16'} <= names
    assert any(n.startswith('int4 kernel') for n in names)
    assert {k['precision'] for k in report['kernels']} == {'float32', 'int8', 'int4'}
    assert len(report['targets']) == 3  # reported, met or not
    table = (out / 'gpu_bench.md').read_text()
    assert '| predict_batch (graph) | float32 | 16 |' in table and 'Checks: ' in table
    assert (out / 'gpu_bench.log').read_text().strip()


def test_rehearsal_installs_the_carried_wheel_into_a_scratch_target(rehearsal) -> None:
    proc, out = rehearsal
    assert 'installing 1 carried wheel(s)' in proc.stdout
    env = json.loads((out / 'gpu_bench.json').read_text())['environment']
    site = env['carried_site']
    assert site and not site.startswith(str(ROOT))
    assert env['carried_imports'][PROBE].startswith(site)
    assert not Path(site).exists()  # the scratch target is removed afterwards


def test_a_failed_check_fails_the_run_after_writing_its_outputs(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(gpu_bench, 'MIN_TOKEN_AGREEMENT', 1.01)  # no run can reach it
    settings = gpu_bench.Settings.rehearsal()
    settings.n_reference, settings.n, settings.batches = 2, 2, (1,)
    settings.quantized_batches, settings.kernel_rows = (), (1,)
    bench = gpu_bench.Bench(settings, tmp_path)
    assert bench.run() == 1
    report = json.loads((tmp_path / 'gpu_bench.json').read_text())
    assert any('graph vs reference' in f for f in report['failures'])
    assert 'FAILED' in (tmp_path / 'gpu_bench.md').read_text()


def test_the_script_refuses_a_gpu_run_without_cuda(tmp_path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip('a GPU is present: the real run would start')
    assert gpu_bench.main(['--out', str(tmp_path)]) == 2
