#!/usr/bin/env python3
"""Writes docs/nodes.md from the nodes' own parameter declarations (run after changing a node).

.venv/bin/python scripts/gen_node_docs.py          # rewrite docs/nodes.md
.venv/bin/python scripts/gen_node_docs.py --check  # exit 1 if it is out of date (a test runs this)
"""

from __future__ import annotations

import argparse
from dataclasses import fields, MISSING
from pathlib import Path
import sys

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openvla_ros.control.config import (  # noqa: E402
    BOUNDS_KEYS,
    field_descriptions,
    LimiterConfig,
    SafetyConfig,
)
from openvla_ros.nodes import (  # noqa: E402
    action_limiter_node,
    arm_adapter_node,
    policy_node,
    safety_monitor_node,
    scripted_policy_node,
    sim_node,
)

NODES = [
    ('policy_node', policy_node, None, None),
    ('action_limiter', action_limiter_node, 'limiter', LimiterConfig),
    ('safety_monitor', safety_monitor_node, 'safety', SafetyConfig),
    ('arm_adapter', arm_adapter_node, None, None),
    ('sim_node', sim_node, None, None),
    ('scripted_policy', scripted_policy_node, None, None),
]


def _cell(text: str) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def render() -> str:
    lines = [
        '# Node parameters',
        '',
        "Generated from the nodes' declarations by `scripts/gen_node_docs.py`; every parameter is",
        'declared with this description, its type and (where given) its range or choices. Values',
        'come from `config/<profile>.yaml` (a ROS 2 parameter file) and the launch arguments.',
        '',
    ]
    for name, module, prefix, cls in NODES:
        doc = (module.__doc__ or '').strip().split('\n\n')[0].replace('\n', ' ')
        lines += [
            f'## {name}',
            '',
            doc,
            '',
            '| parameter | default | description |',
            '|---|---|---|',
        ]
        for p in module.PARAMS:
            extra = f' One of: {", ".join(p.choices)}.' if p.choices else ''
            if p.low is not None and p.high is not None:
                extra += f' Range [{p.low}, {p.high}].'
            lines.append(f'| `{p.name}` | `{p.default!r}` | {_cell(p.description + extra)} |')
        if name in ('action_limiter', 'safety_monitor'):
            # the safe set: shared parameters (the profile's /** section), read by both nodes
            comments = field_descriptions(SafetyConfig)
            for f in fields(SafetyConfig):
                if f.name in BOUNDS_KEYS:
                    default = 'required' if f.default is MISSING else f'`{f.default!r}`'
                    lines.append(
                        f'| `{f.name}` | {default} | shared by the limiter and the monitor: '
                        f'{_cell(comments.get(f.name, ""))} |'
                    )
        if cls is not None:
            comments = field_descriptions(cls)
            for f in fields(cls):
                if not f.init or f.name == 'control_rate' or f.name in BOUNDS_KEYS:
                    continue
                default = 'required' if f.default is MISSING else f'`{f.default!r}`'
                lines.append(
                    f'| `{prefix}.{f.name}` | {default} | {_cell(comments.get(f.name, ""))} |'
                )
        lines.append('')
    return '\n'.join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--check', action='store_true')
    args = parser.parse_args()
    path = ROOT / 'docs' / 'nodes.md'
    text = render()
    if args.check:
        if not path.is_file() or path.read_text() != text:
            print('docs/nodes.md is out of date: run scripts/gen_node_docs.py', file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
