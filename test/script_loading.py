"""Load a file of `scripts/` as a module, so its functions and `main` can be tested in-process
(the scripts are not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / 'scripts'


def load_script(name: str) -> ModuleType:
    """`scripts/<name>.py`, executed as a fresh module named `name`."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
