"""``openvla-ros serve``: argument checks and start-up failures are one line on stderr, exit 1;
the served process closes stalled clients and logs no traceback for anything a client sends."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from remote_helpers import read_until_closed

from openvla_ros.cli import serve
from openvla_ros.cli.main import main as cli


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    return parser.parse_args(list(argv))


def _serve(*argv: str) -> int:
    """`openvla-ros serve ...` in this process (known errors: one line on stderr, exit 1)."""
    return cli(['serve', *argv])


@pytest.mark.parametrize(
    'argv,message',
    [
        (['--port', '0'], '--port must be 1..65535'),
        (['--device', 'tpu'], "--device must be 'cpu' or 'cuda[:N]'"),
        (['--quantize', '4bit'], '--quantize 8bit/4bit needs --device cuda'),
        (['--max-batch', '0'], '--max-batch must be >= 1'),
        (['--max-wait-ms', '-1'], '--max-wait-ms must be >= 0'),
        (['--header-timeout-s', '0'], '--header-timeout-s must be in (0, 3600] seconds'),
        (['--body-timeout-s', 'nan'], '--body-timeout-s must be in (0, 3600] seconds'),
        (['--keep-alive-s', '-1'], '--keep-alive-s must be in (0, 3600] seconds'),
        (['--max-connections', '0'], '--max-connections must be >= 1'),
    ],
)
def test_serve_refuses_bad_arguments_in_one_line(capsys, argv, message) -> None:
    assert _serve('--model', 'x', *argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'openvla-ros serve: {message}') and err.count('\n') == 1


def test_serve_reports_a_port_in_use_in_one_line(capsys) -> None:
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert _serve('--model', 'x', '--port', str(port)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'openvla-ros serve: cannot listen on 127.0.0.1:{port}: ')
    assert err.count('\n') == 1


def test_serve_exits_with_the_load_error_when_the_key_is_unknown(capsys, tiny_model_dir) -> None:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    assert _serve('--model', str(tiny_model_dir), '--port', str(port), '--unnorm-key', 'nope') == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('openvla-ros serve: could not serve') and 'bridge_orig' in err


def test_serve_exits_with_the_load_error_when_the_model_is_missing(capsys, tmp_path) -> None:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    assert _serve('--model', str(tmp_path / 'missing'), '--port', str(port)) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith('openvla-ros serve: could not serve')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, 'the server exited'
        try:
            if httpx.get(f'{url}/health', timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f'the server was not ready within {timeout_s} s')


def test_the_served_process_closes_stalled_clients_and_logs_no_traceback(
    tiny_model_dir, tmp_path
) -> None:
    """A real ``serve`` process with the timeout flags; hostile requests; a clean stderr."""
    port = _free_port()
    url = f'http://127.0.0.1:{port}'
    stderr_path = tmp_path / 'serve.log'
    argv = [sys.executable, '-m', 'openvla_ros.cli.serve', '--model', str(tiny_model_dir)]
    argv += ['--port', str(port), '--unnorm-key', 'bridge_orig', '--header-timeout-s', '1']
    argv += ['--body-timeout-s', '1', '--keep-alive-s', '1', '--max-connections', '32']
    root = Path(__file__).resolve().parents[2]
    with open(stderr_path, 'wb') as stderr:
        process = subprocess.Popen(
            argv,
            stdout=stderr,
            stderr=stderr,
            cwd=root,
            env={**os.environ, 'PYTHONPATH': str(root)},
        )
    try:
        _wait_ready(url, process, timeout_s=180)
        shape_bomb = b'{"image": {"__numpy__": "", "dtype": "|u1", "shape": [0, 1'
        shape_bomb += b'0' * 30 + b']}, "instruction": "x"}'
        for body in (shape_bomb, b'{"instruction": ' + b'7' * 5000 + b'}'):
            for path in ('/act', '/v1/predict'):
                assert httpx.post(url + path, content=body, timeout=30).status_code == 400
        stalled = [socket.create_connection(('127.0.0.1', port), timeout=10) for _ in range(3)]
        stalled[1].sendall(b'GET /health HTTP/1.1\r\nHo')
        stalled[2].sendall(b'POST /act HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{')
        answers = [read_until_closed(sock, 10, reset_is_close=False) for sock in stalled]
        assert answers[0] == b''
        assert answers[1].startswith(b'HTTP/1.1 408') and answers[2].startswith(b'HTTP/1.1 408')
        with socket.create_connection(('127.0.0.1', port), timeout=10) as leaving:
            leaving.sendall(b'POST /act HTTP/1.1\r\nHost: x\r\nContent-Length: 999\r\n\r\n{')
        deadline = time.monotonic() + 10
        while json.loads(httpx.get(f'{url}/metrics').text)['responses_by_status'].get('499') != 1:
            assert time.monotonic() < deadline, 'the vanished client was not counted'
            time.sleep(0.1)
        snap = httpx.get(f'{url}/metrics').json()
        assert '500' not in snap['responses_by_status'], snap[
            'responses_by_status'
        ]  # 503 = loading
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for sock in locals().get('stalled', []):
            sock.close()
    log = stderr_path.read_text()
    assert process.returncode == 0, log[-3000:]
    assert 'Traceback' not in log and 'Exception in ASGI' not in log, log[-3000:]
    assert log.count('left before sending its whole request') == 1, log[-3000:]


@pytest.mark.parametrize('quantize', ['int8', 'int4', 'auto', 'none'])
def test_serve_accepts_core_pytorch_quantization_on_the_cpu(quantize) -> None:
    # int8/int4 run on core PyTorch kernels and 'auto' means none on the CPU: only bitsandbytes
    # (8bit/4bit) needs CUDA.
    assert serve._check(_args('--model', 'x', '--quantize', quantize)) is None
