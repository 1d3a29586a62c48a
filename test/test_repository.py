"""Repository rules that a reviewer would otherwise check by hand."""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[1]


def python_files() -> list[Path]:
    skip = {'.venv', 'build', 'install', 'log', 'outputs'}
    return [p for p in sorted(ROOT.rglob('*.py')) if not skip & set(p.relative_to(ROOT).parts)]


def test_ruff_finds_nothing():
    ruff = Path(sys.prefix) / 'bin' / 'ruff'
    result = subprocess.run([str(ruff), 'check', '.'], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_node_parameter_docs_match_the_declarations():
    result = subprocess.run([sys.executable, 'scripts/gen_node_docs.py', '--check'], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_python_file_parses_as_python_3_10():
    bad = []
    for path in python_files():
        try:
            ast.parse(path.read_text(), feature_version=(3, 10))
        except SyntaxError as exc:
            bad.append(f'{path.relative_to(ROOT)}: {exc}')
    assert bad == []
