"""Serve OpenVLA over HTTP for robots without a GPU (policy node ``backend: remote``).

Examples:

    openvla-ros serve --model openvla/openvla-7b --device cuda --dtype bfloat16 \\
        --unnorm-key bridge_orig
    OPENVLA_ROS_TOKEN=s3cret openvla-ros serve --model openvla/openvla-7b --device cuda \\
        --dtype bfloat16 --host 0.0.0.0 --port 8000 --max-batch 8 --max-wait-ms 5
    openvla-ros serve --model /tmp/openvla-tiny --port 8001      # CPU, tiny test model

    curl http://127.0.0.1:8000/health
    curl -H "Authorization: Bearer s3cret" http://127.0.0.1:8000/metrics

FastAPI + uvicorn: OpenVLA's own ``vla-scripts/deploy.py`` is FastAPI, so its client and scripts
written for it keep working against ``POST /act``; requests are awaited asynchronously while one
worker runs the batched model; FastAPI documents the API at ``/docs`` for free.

Endpoints: POST /act (deploy.py-compatible, json_numpy), POST /v1/predict (action, normalized
action, tokens, latency, model info), GET /v1/info, GET /health (200 ready / 503 loading, no token
needed), GET /metrics (JSON; ?format=prometheus for Prometheus text). Listens on 127.0.0.1 unless
--host says otherwise; put a token on anything else (prefer OPENVLA_ROS_TOKEN over --token: command
lines are visible to every user of the machine). Known errors print one line on stderr and exit 1.
Stalled clients are closed (--header-timeout-s, --body-timeout-s, --keep-alive-s) and open
connections are bounded (--max-connections); see docs/remote.md, "Limits and timeouts".
"""

from __future__ import annotations

import argparse
import os
import sys

from openvla_ros.cli._model_args import add_inference_arguments, add_model_arguments
from openvla_ros.cli.errors import CliError

__all__ = ['add_arguments', 'main']

TOKEN_ENV = 'OPENVLA_ROS_TOKEN'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the verb's arguments."""
    parser.add_argument('--model', required=True, help='checkpoint directory or hub id')
    parser.add_argument(
        '--host', default='127.0.0.1', help='address to listen on (default: 127.0.0.1, this host)'
    )
    parser.add_argument('--port', type=int, default=8000, help='TCP port (default: 8000)')
    add_model_arguments(
        parser,
        dtype_default=None,
        dtype_help='compute dtype (default: bfloat16 on cuda, float32 on cpu)',
    )
    add_inference_arguments(parser)
    parser.add_argument(
        '--unnorm-key',
        default='',
        help='default dataset statistics key for requests that name none (e.g. bridge_orig)',
    )
    parser.add_argument(
        '--token',
        default=None,
        help=f'bearer token required on /act, /v1/*, /metrics (default: ${TOKEN_ENV}, or none)',
    )
    parser.add_argument(
        '--max-batch', type=int, default=8, help='most requests per model call (default: 8)'
    )
    parser.add_argument(
        '--max-wait-ms',
        type=float,
        default=5.0,
        help='longest a request waits for others to share its batch (default: 5)',
    )
    parser.add_argument(
        '--max-queue', type=int, default=64, help='most waiting requests before 503 (default: 64)'
    )
    parser.add_argument(
        '--max-image-pixels',
        type=int,
        default=2048 * 2048,
        help='largest image, width x height (default: 4194304 = 2048 x 2048)',
    )
    parser.add_argument(
        '--max-body-mb',
        type=float,
        default=32.0,
        help='largest request body in MiB (default: 32)',
    )
    parser.add_argument(
        '--max-instruction-chars',
        type=int,
        default=1000,
        help='longest instruction (default: 1000)',
    )
    parser.add_argument(
        '--header-timeout-s',
        type=float,
        default=10.0,
        help='a connection must send its request headers within this (default: 10)',
    )
    parser.add_argument(
        '--body-timeout-s',
        type=float,
        default=60.0,
        help='the request body must arrive within this after the headers (default: 60)',
    )
    parser.add_argument(
        '--keep-alive-s',
        type=float,
        default=5.0,
        help='an idle keep-alive connection is closed after this (default: 5)',
    )
    parser.add_argument(
        '--max-connections',
        type=int,
        default=64,
        help='most open connections; more get 503 and are closed (default: 64)',
    )
    parser.add_argument(
        '--log-level',
        default='info',
        choices=('debug', 'info', 'warning', 'error'),
        help='log level (debug also logs every request)',
    )


def _check(args: argparse.Namespace) -> str | None:
    """The first problem with the arguments, or None (checked before loading anything)."""
    if not 0 < args.port < 65536:
        return f'--port must be 1..65535, got {args.port}'
    if not (args.device == 'cpu' or args.device.startswith('cuda')):
        return f"--device must be 'cpu' or 'cuda[:N]', got {args.device!r}"
    if args.quantize in ('8bit', '4bit') and args.device == 'cpu':
        return '--quantize 8bit/4bit needs --device cuda (bitsandbytes runs on GPUs)'
    if args.max_batch < 1:
        return f'--max-batch must be >= 1, got {args.max_batch}'
    if args.max_wait_ms < 0:
        return f'--max-wait-ms must be >= 0, got {args.max_wait_ms}'
    if args.max_queue < 1:
        return f'--max-queue must be >= 1, got {args.max_queue}'
    if args.max_image_pixels < 1 or args.max_body_mb <= 0 or args.max_instruction_chars < 1:
        return '--max-image-pixels, --max-body-mb and --max-instruction-chars must be positive'
    for name in ('header_timeout_s', 'body_timeout_s', 'keep_alive_s'):
        value = getattr(args, name)
        if not 0 < value <= 3600:  # also refuses nan
            return f'--{name.replace("_", "-")} must be in (0, 3600] seconds, got {value}'
    if args.max_connections < 1:
        return f'--max-connections must be >= 1, got {args.max_connections}'
    return None


def main(args: argparse.Namespace) -> int:
    """Check the arguments, bind the port, load the model in the background, serve."""
    problem = _check(args)
    if problem:
        raise CliError(problem)
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV, '')
    dtype = args.dtype or ('bfloat16' if args.device.startswith('cuda') else 'float32')

    import logging  # noqa: PLC0415

    from openvla_ros.model.errors import OpenVLAError  # noqa: PLC0415
    from openvla_ros.remote.protocol import Limits  # noqa: PLC0415
    from openvla_ros.remote.server import bind_socket, run_server, ServerSettings  # noqa: PLC0415

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()), format='%(asctime)s %(message)s'
    )
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        token=token,
        unnorm_key=args.unnorm_key,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        limits=Limits(
            max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            max_image_pixels=args.max_image_pixels,
            max_instruction_chars=args.max_instruction_chars,
        ),
        log_level=args.log_level,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        keep_alive_s=args.keep_alive_s,
        max_connections=args.max_connections,
    )
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        raise CliError(f'cannot listen on {args.host}:{args.port}: {exc.strerror or exc}') from exc

    def load():  # noqa: ANN202 - returns OpenVLAPolicy; torch is imported here only
        from openvla_ros.model import OpenVLAPolicy  # noqa: PLC0415

        return OpenVLAPolicy.load(
            args.model,
            device=args.device,
            dtype=dtype,
            quantize=args.quantize,
            adapter=args.adapter,
            merge_adapter=args.adapter is not None,
            center_crop=args.center_crop,
            decode=args.decode,
        )

    try:
        run_server(load, settings, sock=sock)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn shut down cleanly, then re-raised the signal
        return 0
    except (OpenVLAError, OSError, ValueError, RuntimeError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f'could not serve {args.model!r}: {text}') from exc
    return 0


if __name__ == '__main__':  # python -m openvla_ros.cli.serve ... = openvla-ros serve ...
    from openvla_ros.cli.main import main as cli  # noqa: PLC0415

    sys.exit(cli(['serve', *sys.argv[1:]]))
