"""scripts/remote_batching_bench.py (the source of docs/remote.md's batching figures) still runs,
counts every request it sends and finds batched and unbatched servers answering the same actions.

A small run: real ``serve`` processes, 2 robots x 2 requests, one round. Nothing timed is checked.
"""

from __future__ import annotations

import json

from script_loading import load_script


def test_the_batching_bench_counts_its_requests_and_gets_the_same_actions(
    tiny_model_dir, capsys
) -> None:
    bench = load_script('remote_batching_bench')
    argv = ['--model', str(tiny_model_dir), '--robots', '2', '--steps', '2', '--reps', '1']
    argv += ['--setting', '--max-batch 1', '--setting', '--max-batch 4 --max-wait-ms 50']
    argv += ['--batches', '2', '--size', '64', '--json']
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert '| `--max-batch 1` |' in out and 'predict_batch [ms]' in out
    unbatched, batched = result['serving']
    assert unbatched['requests'] == batched['requests'] == 2 * 2  # the timed round, counted
    assert set(unbatched['batches_by_size']) == {'1'}
    assert all(1 <= int(size) <= 4 for size in batched['batches_by_size'])
    assert result['max_action_diff'] < 1e-9  # batching never changes an answer
    assert [row['batch'] for row in result['model_calls']] == [2]
    assert result['command'].startswith('scripts/remote_batching_bench.py --model ')
