"""Inference benchmark: latency, actions per second and memory of each decode path (pure, no
rclpy).

Every speed claim is a ratio against the ``reference`` path (transformers ``generate``, the way the
official README runs OpenVLA) measured in the same process, on the same device, on the same weights
and inputs. ``fast`` is our static-KV-cache greedy loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import resource
import time

import numpy as np

from openvla_ros.metrics.machine import host_facts

__all__ = [
    'BenchResult',
    'as_dict',
    'bench_policy',
    'environment',
    'format_table',
    'peak_rss_bytes',
]


@dataclass
class BenchResult:
    """One decode mode's numbers."""

    mode: str
    n: int
    p50_s: float
    p90_s: float
    mean_s: float
    actions_per_s: float
    agreement: float | None  # fraction of steps whose 7 tokens equal the reference's
    peak_gpu_bytes: int | None
    tokens: list[list[int]] = field(default_factory=list, repr=False)


def environment(device: str) -> dict[str, str]:
    """Device, versions and host facts that belong next to every number."""
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    env = {
        **{key: str(value) for key, value in host_facts().items()},  # date, python, cpu, nproc
        'device': device,
        'torch': torch.__version__,
        'transformers': transformers.__version__,
        'cpu_threads': str(torch.get_num_threads()),
    }
    if device.startswith('cuda') and torch.cuda.is_available():
        env['gpu'] = torch.cuda.get_device_name(torch.device(device))
    try:
        import bitsandbytes  # noqa: PLC0415

        env['bitsandbytes'] = bitsandbytes.__version__
    except ImportError:
        env['bitsandbytes'] = 'not installed'
    return env


def peak_rss_bytes() -> int:
    """Peak resident memory of this process [bytes] (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def bench_policy(
    policy,
    images: list[np.ndarray],
    instruction: str,
    unnorm_key: str | None,
    modes: tuple[str, ...] = ('reference', 'fast'),
    warmup: int = 2,
    n: int = 10,
    progress=None,
) -> list[BenchResult]:
    """Times ``policy.predict`` for each decode mode on the same inputs, reference first.

    Args:
        policy: an ``OpenVLAPolicy`` (its ``decode`` attribute is switched per mode).
        images: inputs, cycled through.
        instruction: the instruction.
        unnorm_key: dataset statistics key.
        modes: decode modes; 'reference' is the baseline for the agreement column.
        warmup: untimed predictions per mode first.
        n: timed predictions per mode.
        progress: optional callable(increment) for a progress bar.

    Raises:
        ValueError: n < 1, no images, or an unknown mode.
    """
    import torch  # noqa: PLC0415

    if n < 1 or not images:
        raise ValueError(f'need n >= 1 and at least one image, got n={n}, {len(images)} images')
    cuda = str(getattr(policy, 'device', 'cpu')).startswith('cuda') or torch.cuda.is_available()
    results: list[BenchResult] = []
    reference_tokens: list[list[int]] | None = None
    original = policy.decode
    try:
        for mode in modes:
            policy.decode = mode
            for i in range(warmup):
                policy.predict(images[i % len(images)], instruction, unnorm_key)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            latencies, tokens = [], []
            for i in range(n):
                start = time.perf_counter()
                p = policy.predict(images[i % len(images)], instruction, unnorm_key)
                latencies.append(time.perf_counter() - start)
                tokens.append(list(p.tokens))
                if progress is not None:
                    progress(1)
            lat = np.asarray(latencies)
            agreement = None
            if mode == 'reference':
                reference_tokens = tokens
            elif reference_tokens is not None:
                agreement = float(np.mean([a == b for a, b in zip(tokens, reference_tokens)]))
            results.append(
                BenchResult(
                    mode=mode,
                    n=n,
                    p50_s=float(np.percentile(lat, 50)),
                    p90_s=float(np.percentile(lat, 90)),
                    mean_s=float(lat.mean()),
                    actions_per_s=float(n / lat.sum()),
                    agreement=agreement,
                    peak_gpu_bytes=int(torch.cuda.max_memory_allocated()) if cuda else None,
                    tokens=tokens,
                )
            )
    finally:
        policy.decode = original
    return results


def format_table(results: list[BenchResult]) -> str:
    """A Markdown table; speed-ups are against the reference row."""
    base = next((r for r in results if r.mode == 'reference'), None)
    lines = [
        '| mode | n | p50 [ms] | p90 [ms] | actions/s | x reference | token agreement | '
        'peak GPU [GiB] |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for r in results:
        ratio = f'{r.actions_per_s / base.actions_per_s:.2f}' if base else 'n/a'
        agree = (
            'baseline'
            if r.mode == 'reference'
            else (f'{100 * r.agreement:.1f} %' if r.agreement is not None else 'n/a')
        )
        gpu = f'{r.peak_gpu_bytes / 2**30:.2f}' if r.peak_gpu_bytes is not None else 'n/a'
        lines.append(
            f'| {r.mode} | {r.n} | {1e3 * r.p50_s:.1f} | {1e3 * r.p90_s:.1f} | '
            f'{r.actions_per_s:.2f} | {ratio} | {agree} | {gpu} |'
        )
    return '\n'.join(lines)


def as_dict(results: list[BenchResult]) -> list[dict]:
    """JSON-ready results (without the raw token lists)."""
    out = []
    for r in results:
        d = asdict(r)
        d.pop('tokens')
        out.append(d)
    return out
