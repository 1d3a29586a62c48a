"""No import cycle between ``openvla_ros.backends`` and ``openvla_ros.remote`` (issue #17).

The remote backend is built on the HTTP client, so ``backends`` may import ``remote``; the client
must never import ``backends`` back, not even inside a function. Two checks: a static one (every
``import`` in the source, module level or not, forms a graph that must be acyclic) and a dynamic
one (each module imported first in a fresh interpreter, then all the others).
"""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

import openvla_ros

ROOT = Path(openvla_ros.__file__).resolve().parent.parent
PACKAGES = ('openvla_ros.backends', 'openvla_ros.remote')


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the packages (``__init__`` too)."""
    found: dict[str, Path] = {}
    for package in packages:
        directory = root.joinpath(*package.split('.'))
        single = directory.with_suffix('.py')  # a plain module, not a package
        for path in [single] if single.is_file() else sorted(directory.rglob('*.py')):
            parts = path.relative_to(root).with_suffix('').parts
            if parts[-1] == '__init__':
                parts = parts[:-1]
            found['.'.join(parts)] = path
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split('.')
    return ['.'.join(parts[:i]) for i in range(1, len(parts))]


def _imported(name: str, path: Path) -> set[str]:
    """Every module this source imports anywhere (functions and TYPE_CHECKING blocks included)."""
    is_package = path.name == '__init__.py'
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split('.')
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            targets.add(module)
            # `from package import submodule` imports the submodule
            targets.update(f'{module}.{alias.name}' for alias in node.names)
    return targets


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Edges between the packages' modules, as Python runs them.

    Importing ``a.b.c`` first runs the packages ``a`` and ``a.b`` that are not yet running; a
    module's own parent packages already are (they run before it), so only the target's other
    ancestors get an edge.
    """
    modules = _modules(root, packages)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        own = set(_ancestors(name))
        for target in _imported(name, path):
            for step in [*_ancestors(target), target]:
                if step in modules and step != name and step not in own:
                    graph[name].add(step)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_the_cycle_issue_17_reported(tmp_path: Path) -> None:
    """The old layout (backends.py imports the client inside a function, the client imports
    backends at module level) is a cycle; so is one closed through a package's __init__."""
    pkg = tmp_path / 'pkg'
    (pkg / 'remote').mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'backends.py').write_text(
        'def make():\n    from pkg.remote.client import RemoteBackend\n    return RemoteBackend\n'
    )
    (pkg / 'remote' / '__init__.py').write_text('from pkg.remote.client import RemoteBackend\n')
    (pkg / 'remote' / 'client.py').write_text('from pkg.backends import BackendConfig\n')
    graph = import_graph(tmp_path, ('pkg.backends', 'pkg.remote'))
    assert graph['pkg.backends'] == {'pkg.remote', 'pkg.remote.client'}
    assert find_cycle(graph) in (
        ['pkg.backends', 'pkg.remote', 'pkg.remote.client', 'pkg.backends'],
        ['pkg.backends', 'pkg.remote.client', 'pkg.backends'],
    )
    # Through an __init__: the client is clean, but the remote package re-exports a backend.
    (pkg / 'remote' / 'client.py').write_text('import httpx\n')
    (pkg / 'remote' / '__init__.py').write_text(
        'from .client import *\nfrom pkg.backends import make\n'
    )
    cycle = find_cycle(import_graph(tmp_path, ('pkg.backends', 'pkg.remote')))
    assert cycle is not None and 'pkg.remote' in cycle and 'pkg.backends' in cycle


def test_backends_and_remote_import_graph_has_no_cycle() -> None:
    graph = import_graph(ROOT, PACKAGES)
    assert {'openvla_ros.backends.base', 'openvla_ros.remote.client'} <= set(graph)
    assert 'openvla_ros.remote.client' in graph['openvla_ros.backends.remote']  # the one way
    assert find_cycle(graph) is None, f'import cycle: {" -> ".join(find_cycle(graph) or [])}'


def test_nothing_in_remote_imports_backends() -> None:
    """The HTTP client and server stand alone: no import of openvla_ros.backends, anywhere."""
    for name, path in _modules(ROOT, ('openvla_ros.remote',)).items():
        bad = {t for t in _imported(name, path) if t.startswith('openvla_ros.backends')}
        assert not bad, f'{name} imports {sorted(bad)}'


ALL_MODULES = sorted(_modules(ROOT, PACKAGES))

_IMPORT_ALL = textwrap.dedent(
    """
    import importlib, sys
    first, rest = sys.argv[1], sys.argv[2:]
    importlib.import_module(first)
    if first.startswith('openvla_ros.remote'):
        assert 'openvla_ros.backends' not in sys.modules, 'openvla_ros.remote imported backends'
    for name in rest + rest[::-1]:
        importlib.import_module(name)
    assert 'torch' not in sys.modules, 'importing the modules imported torch'
    print('ok', len(rest) + 1)
    """
)


@pytest.mark.parametrize('first', ALL_MODULES)
def test_each_module_imports_first_in_a_fresh_interpreter(first: str) -> None:
    """A cycle breaks only when one of its modules is imported first; so try each first, then
    all the others. Neither package may import torch (it loads only when a model is built)."""
    rest = [m for m in ALL_MODULES if m != first]
    done = subprocess.run(
        [sys.executable, '-c', _IMPORT_ALL, first, *rest],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f'ok {len(ALL_MODULES)}'
