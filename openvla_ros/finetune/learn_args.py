"""Helpers of `scripts/gpu_learn.sh`: a run's `learn` command from its learn.json, and the export
of the newest step checkpoint of a training that was cut short.

    python -m openvla_ros.finetune.learn_args RUN [--steps N --batch-size B --lr LR
        --save-every K --device D]        # prints the `learn` arguments, one per line
    python -m openvla_ros.finetune.learn_args RUN --export-latest
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

__all__ = ['export_latest', 'learn_arguments']

#: learn.json settings -> the `learn` option that sets them (the rest keep their defaults).
_OPTIONS = {
    'task': '--task', 'demos': '--demos', 'noise_probability': '--noise-probability',
    'model_size': '--model-size', 'warmup_steps': '--warmup-steps', 'augment': '--augment',
    'bin_sigma': '--bin-sigma',
    'select_episodes': '--select-episodes', 'eval_episodes': '--eval-episodes',
    'demo_seed': '--demo-seed', 'select_seed': '--select-seed', 'eval_seed': '--eval-seed',
    'seed': '--seed', 'expert_plan_from': '--expert-plan-from', 'expert_gain': '--expert-gain',
    'vision_steps': '--vision-steps', 'vision_views': '--vision-views',
    'miss_probability': '--miss-probability',
}  # fmt: skip


def learn_arguments(run: Path, overrides: dict[str, str]) -> list[str]:
    """`openvla-ros` arguments that train `run` with its recorded settings and `overrides`
    (option -> value, e.g. {'--steps': '8000'}), stopping after the training."""
    settings = json.loads((run / 'learn.json').read_text())['settings']
    args = ['learn', settings['profile'], '--out', str(run)]
    for key, option in _OPTIONS.items():
        if key in settings and option not in overrides:
            args += [option, str(settings[key])]
    args += ['--noise', *(str(v) for v in settings['noise'])]
    if 'expert_speed' in settings:
        args += ['--expert-speed', *(str(v) for v in settings['expert_speed'])]
    if settings.get('use_failed_demos'):
        args.append('--use-failed-demos')
    if not settings.get('keep_still', True):
        args.append('--drop-still-labels')
    for option, value in overrides.items():
        args += [option, value]
    return [*args, '--stop-after', 'train']


def export_latest(run: Path) -> Path | None:
    """Export the newest step checkpoint of `run/train` if it has no export yet (a training
    stopped by a time limit keeps its last checkpoint); returns the export or None."""
    from openvla_ros.finetune.learn import _step_checkpoints, export_checkpoint

    settings = json.loads((run / 'learn.json').read_text())['settings']
    steps = _step_checkpoints(run / 'train')
    if not steps:
        return None
    return export_checkpoint(run / 'train', steps[-1], run / 'base', settings['unnorm_key'])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run', type=Path)
    parser.add_argument('--export-latest', action='store_true')
    for option in ('--steps', '--batch-size', '--lr', '--save-every', '--device'):
        parser.add_argument(option)
    args = parser.parse_args(argv)
    if args.export_latest:
        path = export_latest(args.run)
        print(f'newest step checkpoint exported: {path}' if path else 'no step checkpoint')
        return 0
    overrides = {
        f'--{name.replace("_", "-")}': value
        for name, value in vars(args).items()
        if name not in ('run', 'export_latest') and value is not None
    }
    print('\n'.join(learn_arguments(args.run, overrides)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
