"""What machine and day a measurement ran on, written next to every benchmark figure.

One copy, so that the inference benchmark and the control-core benchmark describe a host the same
way (the docs quote these fields beside each number).
"""

from __future__ import annotations

import datetime
import os
import platform

__all__ = ['cpu_name', 'host_facts', 'today']


def cpu_name(cpuinfo: str = '/proc/cpuinfo') -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else ``platform.processor()``, else
    'unknown'.

    ``platform.processor()`` is empty or just 'x86_64' on Linux, which says nothing about speed.
    """
    try:
        with open(cpuinfo, encoding='utf-8') as stream:
            for line in stream:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def today() -> str:
    """Today's local date, ISO 8601 (YYYY-MM-DD)."""
    return datetime.date.today().isoformat()


def host_facts() -> dict[str, str | int | None]:
    """Date, Python version, CPU model and logical CPU count of this host."""
    return {
        'date': today(),
        'python': platform.python_version(),
        'cpu': cpu_name(),
        'nproc': os.cpu_count(),
    }
