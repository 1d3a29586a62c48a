"""metrics.machine: one description of the host, used by both benchmarks."""

from __future__ import annotations

import datetime
import os
import platform

from openvla_ros.metrics import machine
from openvla_ros.metrics.machine import cpu_name, host_facts, today

_X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
"""

# aarch64 kernels have no 'model name' line
_ARM_CPUINFO = 'processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n'


def test_cpu_name_reads_the_model_name_line(tmp_path):
    path = tmp_path / 'cpuinfo'
    path.write_text(_X86_CPUINFO)
    assert cpu_name(str(path)) == 'AMD EPYC 7B13 64-Core Processor'


def test_cpu_name_falls_back_to_platform_then_unknown(tmp_path, monkeypatch):
    arm = tmp_path / 'cpuinfo'
    arm.write_text(_ARM_CPUINFO)
    monkeypatch.setattr(platform, 'processor', lambda: 'aarch64')
    assert cpu_name(str(arm)) == 'aarch64'
    assert cpu_name(str(tmp_path / 'missing')) == 'aarch64'
    monkeypatch.setattr(platform, 'processor', lambda: '')
    assert cpu_name(str(tmp_path / 'missing')) == 'unknown'


def test_cpu_name_on_this_host_is_the_first_model_name():
    if not os.path.exists('/proc/cpuinfo'):  # pragma: no cover - the test machines run Linux
        assert cpu_name() == (platform.processor() or 'unknown')
        return
    with open('/proc/cpuinfo', encoding='utf-8') as stream:
        names = [line.split(':', 1)[1].strip() for line in stream if line.startswith('model name')]
    assert cpu_name() == (names[0] if names else platform.processor() or 'unknown')


def test_today_and_host_facts():
    before = datetime.date.today()
    day = datetime.date.fromisoformat(today())
    assert before <= day <= datetime.date.today()
    facts = host_facts()
    assert set(facts) == {'date', 'python', 'cpu', 'nproc'}
    assert facts['cpu'] == cpu_name() and facts['nproc'] == os.cpu_count()
    assert facts['python'] == platform.python_version()


def test_both_benchmarks_describe_the_host_with_it(monkeypatch):
    from openvla_ros.control.benchmark import run  # noqa: PLC0415
    from openvla_ros.metrics.benchmark import environment  # noqa: PLC0415

    monkeypatch.setattr(machine, 'cpu_name', lambda cpuinfo='': 'Test CPU 9000')
    control = run(seconds=0.01)['machine']
    assert control['cpu'] == 'Test CPU 9000' and control['seconds_per_measurement'] == 0.01
    assert {k: control[k] for k in ('date', 'python', 'nproc')} == {
        k: v for k, v in host_facts().items() if k != 'cpu'
    }
    env = environment('cpu')
    assert env['cpu'] == 'Test CPU 9000' and env['device'] == 'cpu'
    assert env['date'] == today() and env['nproc'] == str(os.cpu_count())
