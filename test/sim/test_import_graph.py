"""openvla_ros.sim has no import cycle, counting every import statement in its modules.

Every ``import``/``from ... import`` anywhere in a module counts (module level, inside functions,
under ``if TYPE_CHECKING:``): a lazy or type-only import hides a cycle from Python, not from a
reader, and is one refactor away from an ImportError. The implicit import of a parent package
(importing ``openvla_ros.sim.world`` first runs ``openvla_ros/sim/__init__.py``) is not an edge;
an explicit ``from openvla_ros.sim import SimWorld`` is one (to the package).
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = 'openvla_ros.sim'
SIM_DIR = Path(__file__).resolve().parents[2] / 'openvla_ros' / 'sim'


def _module_name(path: Path) -> str:
    return PACKAGE if path.stem == '__init__' else f'{PACKAGE}.{path.stem}'


def imported_modules(source: str, module: str, package_modules: set[str]) -> set[str]:
    """Modules of ``package_modules`` that ``source`` (the text of ``module``) imports anywhere."""
    is_package = module == PACKAGE
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = module.split('.') if is_package else module.split('.')[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = '.'.join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ''
            # `from pkg import sub` imports the submodule; `from pkg import name` the package
            names = [
                f'{base}.{a.name}' if f'{base}.{a.name}' in package_modules else base
                for a in node.names
            ]
        else:
            continue
        for name in names:
            # `import openvla_ros.sim.world.x` cannot name a non-module; take the longest known
            while name and name not in package_modules:
                name = name.rpartition('.')[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(directory: Path) -> dict[str, set[str]]:
    """Module -> modules of the same package it imports, for every ``*.py`` in ``directory``."""
    paths = sorted(directory.glob('*.py'))
    modules = {_module_name(p) for p in paths}
    return {
        _module_name(p): imported_modules(p.read_text(), _module_name(p), modules) for p in paths
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (first module repeated at the end), or None."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as err:
        return list(err.args[1])
    return None


def test_sim_package_has_no_import_cycle():
    graph = import_graph(SIM_DIR)
    assert {'openvla_ros.sim.world', 'openvla_ros.sim.tasks'} <= set(graph)
    assert 'openvla_ros.sim.scene' in graph['openvla_ros.sim.world']  # the parser sees imports
    cycle = find_cycle(graph)
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


_MODULES = {PACKAGE, f'{PACKAGE}.world', f'{PACKAGE}.tasks', f'{PACKAGE}.scene'}


@pytest.mark.parametrize(
    'tasks_source',
    [
        # the cycle this test was written for: world imported only for a type annotation
        'from typing import TYPE_CHECKING\n'
        'if TYPE_CHECKING:\n'
        '    from openvla_ros.sim.world import SimWorld\n',
        # a lazy import inside a function
        'def f():\n    from openvla_ros.sim import world\n    return world\n',
        # a plain module import, and a relative one
        'import openvla_ros.sim.world\n',
        'from .world import SimWorld\n',
        # through the package's __init__ (which imports world)
        'from openvla_ros.sim import SimWorld\n',
    ],
)
def test_cycles_hidden_in_any_import_form_are_found(tasks_source):
    graph = {
        PACKAGE: {f'{PACKAGE}.world', f'{PACKAGE}.tasks'},
        f'{PACKAGE}.world': imported_modules(
            'def g():\n    from openvla_ros.sim.tasks import get_task\n',
            f'{PACKAGE}.world',
            _MODULES,
        ),
        f'{PACKAGE}.tasks': imported_modules(tasks_source, f'{PACKAGE}.tasks', _MODULES),
        f'{PACKAGE}.scene': set(),
    }
    assert graph[f'{PACKAGE}.world'] == {f'{PACKAGE}.tasks'}
    cycle = find_cycle(graph)
    assert cycle is not None and f'{PACKAGE}.tasks' in cycle


def test_imports_outside_the_package_and_self_imports_are_not_edges():
    source = (
        'import numpy as np\nfrom openvla_ros.control.actions import apply_delta\n'
        'from openvla_ros.sim.scene import object_spec\nimport openvla_ros.sim.tasks\n'
    )
    assert imported_modules(source, f'{PACKAGE}.tasks', _MODULES) == {f'{PACKAGE}.scene'}
