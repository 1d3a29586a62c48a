"""``openvla-ros serve``: argument checks and start-up failures are one line on stderr, exit 1."""

from __future__ import annotations

import argparse
import socket

import pytest

from openvla_ros.cli import serve


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    'argv,message',
    [
        (['--port', '0'], '--port must be 1..65535'),
        (['--device', 'tpu'], "--device must be 'cpu' or 'cuda[:N]'"),
        (['--quantize', '4bit'], '--quantize needs --device cuda'),
        (['--max-batch', '0'], '--max-batch must be >= 1'),
        (['--max-wait-ms', '-1'], '--max-wait-ms must be >= 0'),
    ],
)
def test_serve_refuses_bad_arguments_in_one_line(capsys, argv, message) -> None:
    assert serve.main(_args('--model', 'x', *argv)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'serve: {message}') and err.count('\n') == 1


def test_serve_reports_a_port_in_use_in_one_line(capsys) -> None:
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert serve.main(_args('--model', 'x', '--port', str(port))) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'serve: cannot listen on 127.0.0.1:{port}: ') and err.count('\n') == 1


def test_serve_exits_with_the_load_error_when_the_key_is_unknown(capsys, tiny_model_dir) -> None:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    args = _args('--model', str(tiny_model_dir), '--port', str(port), '--unnorm-key', 'nope')
    assert serve.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('serve: could not serve') and 'bridge_orig' in err


def test_serve_exits_with_the_load_error_when_the_model_is_missing(capsys, tmp_path) -> None:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    args = _args('--model', str(tmp_path / 'missing'), '--port', str(port))
    assert serve.main(args) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith('serve: could not serve')
