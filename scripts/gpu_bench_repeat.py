"""Is a batched bf16 prediction on the GPU repeatable? (scripts/gpu_bench.sh found it was not.)

Runs `predict_batch` on the same 8 frames several times through the CUDA-graph path and prints
how many rows changed between calls. Run it twice, with and without
`CUBLAS_WORKSPACE_CONFIG=:4096:8` (cuBLAS' deterministic mode), to tell cuBLAS' split-K
reductions from a bug in our graphs: `PYTHONPATH=. python3 scripts/gpu_bench_repeat.py`.
"""

from __future__ import annotations

import os

import numpy as np

from openvla_ros.model.synthetic import random_policy


def main() -> None:
    policy = random_policy('7b', device='cuda', dtype='bfloat16', decode='graph')
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(8)]
    for decode in ('graph', 'fast'):
        policy.decode = decode
        runs = [[p.tokens for p in policy.predict_batch(images, ['put the spoon on the towel'] * 8,
                                                        'bridge_orig')] for _ in range(6)]
        changed = sum(any(run[i] != runs[0][i] for run in runs[1:]) for i in range(8))
        print(f'CUBLAS_WORKSPACE_CONFIG={os.environ.get("CUBLAS_WORKSPACE_CONFIG", "")!r} '
              f'decode={decode}: {changed} of 8 rows changed across 6 calls')


if __name__ == '__main__':
    main()
