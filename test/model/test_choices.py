"""The model choices: one torch-free module read by the CLI, the nodes and the launch."""

from __future__ import annotations

import subprocess
import sys


def test_choices_graph_and_cli_flags_import_without_torch() -> None:
    # --help and a launch file list these choices; loading torch (seconds, GBs) for that is wrong.
    code = (
        'import sys\n'
        'import openvla_ros.model.choices, openvla_ros.cli._model_args\n'
        'import openvla_ros.bringup.graph\n'
        'print(sorted(m for m in ("torch", "transformers", "timm") if m in sys.modules))\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == '[]'


def test_loading_the_model_package_lazily_still_exports_every_name() -> None:
    import openvla_ros.model as model  # noqa: PLC0415

    for name in model.__all__:
        assert getattr(model, name) is not None, name


def test_every_place_reads_the_same_choices() -> None:
    from openvla_ros.bringup.graph import LAUNCH_ARGUMENTS  # noqa: PLC0415
    from openvla_ros.cli import _model_args  # noqa: PLC0415
    from openvla_ros.model import choices, loading, modeling  # noqa: PLC0415

    assert loading.QUANTIZE_MODES is choices.QUANTIZE_MODES
    assert modeling.DECODE_MODES is choices.DECODE_MODES
    assert _model_args.QUANTIZE == choices.QUANTIZE_MODES
    assert set(loading.DTYPES) == set(choices.DTYPE_NAMES)
    quantize = next(a for a in LAUNCH_ARGUMENTS if a.name == 'quantize')
    assert tuple(quantize.choices) == ('', *choices.QUANTIZE_MODES)
