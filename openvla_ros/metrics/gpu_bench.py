"""The GPU table of docs/benchmarks.md in one run: bf16 reference/fast/graph, int8, int4, batched.

Run through `scripts/gpu_bench.sh` (which installs carried wheels first), or directly:

    python -m openvla_ros.metrics.gpu_bench --out /tmp/gpu_bench  # the 7B model on CUDA
    python -m openvla_ros.metrics.gpu_bench --out /tmp/rehearsal --cpu-rehearsal  # tiny model, CPU

One process, one set of random weights (`random_policy(seed=0)` built again for each precision,
so every precision starts from the same bf16 weights), fixed random 640x480 frames and one
instruction. Per row: p50/p90 latency, actions/s, peak GPU memory, and agreement with the bf16
reference path (transformers `generate`): token agreement (fraction of the 7 tokens equal) and
action agreement (fraction of actions with all 7 tokens equal, mean and max |difference| of the
normalized action). Batched rows go through `OpenVLAPolicy.predict_batch`, the call the policy
server's batcher makes. Kernel rows time one linear layer of each precision.

It imports model code only (no rclpy, no server, no simulator), writes `gpu_bench.json` after each
phase (a run cut short still leaves what it measured) and `gpu_bench.md` at the end, and exits 1
listing every failed check: a bf16 path agreeing with the reference on under 90 % of tokens (the
noise floor of these random weights, whose top logits are often near-ties, is measured: the
reference against itself at batch 2), batched or repeated calls agreeing on under 90 %, a
quantized kernel or model far from bf16, an exception. Speed targets and the 99 % agreement
target are reported as met or not; missing one is not a failure.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
import gc
import json
import logging
import os
from pathlib import Path
import platform
import sys
import time
import traceback
from typing import Any

import numpy as np

INSTRUCTION = 'put the spoon on the towel'
UNNORM_KEY = 'bridge_orig'
#: Correctness gates (failures) and speed targets (reported).
#: Token agreement below which a bf16 path is broken (a wrong KV cache, mask or RoPE agrees on
#: well under half the tokens). Random weights have near-tied top logits, so two correct bf16
#: paths differ on a few % of tokens: on an H200 the reference agreed with itself across batch
#: shapes on 98.6 % and transformers' own static-cache path on 94.3 % (2026-11-30); both are
#: reported next to the 99 % target.
MIN_TOKEN_AGREEMENT = 0.90
#: Same precision, other batch size or a second call: GPU kernels are not bit-repeatable for
#: batches >= 4 (seen in transformers' path as well as ours, with and without cuBLAS'
#: deterministic workspace, `scripts/gpu_bench_repeat.py`), which flips near-tied tokens, and a
#: flip changes the rest of its row in a greedy decode (1-2 tokens of one row at batch 4, 8
#: and 16 on an H200: 96.4 % at worst).
MIN_BATCH_AGREEMENT = 0.90
#: Relative error of one quantized linear layer against bf16 on random inputs.
MAX_KERNEL_ERROR = {'int8': 0.02, 'int4': 0.15}
#: Relative error of the first-step logits of the whole quantized model against bf16.
#: Uncorrelated logits give about 1.41; these bounds catch broken kernels or packing, while the
#: exact numbers (random weights compound the error over 32 layers) are reported.
MAX_LOGITS_ERROR = {'int8': 0.3, 'int4': 0.9}
TARGETS = {
    'bf16_actions_per_s': 25.0,
    'bf16_token_agreement': 0.99,
    'int4_actions_per_s': 40.0,
    'int4_peak_gib': 8.0,
    'batched_actions_per_s': 150.0,
}

log = logging.getLogger('gpu_bench')


@dataclass
class Settings:
    """What one run measures; `--cpu-rehearsal` shrinks everything to the tiny model."""

    size: str = '7b'
    device: str = 'cuda'
    dtype: str = 'bfloat16'
    n_reference: int = 10
    n: int = 30
    warmup: int = 2
    batches: tuple[int, ...] = (1, 4, 8, 16)
    batch_rounds: int = 5
    quantized_batches: tuple[int, ...] = (1, 8)
    kernel_rows: tuple[int, ...] = (1, 16, 280)
    time_budget_s: float = 420.0

    @classmethod
    def rehearsal(cls) -> Settings:
        return cls(size='tiny', device='cpu', dtype='float32', n_reference=4, n=6, warmup=1,
                   batch_rounds=2, kernel_rows=(1, 16), time_budget_s=240.0)


@dataclass
class Row:
    """One line of the table."""

    path: str
    precision: str
    batch: int
    n: int
    p50_ms: float
    p90_ms: float
    actions_per_s: float
    peak_gib: float | None
    token_agreement: float | None = None
    action_agreement: float | None = None
    mean_abs_action_diff: float | None = None
    max_abs_action_diff: float | None = None
    note: str = ''

    def set_agreement(self, agree: dict[str, float]) -> None:
        """The agreement columns from `agreement` (tokens and actions against a reference)."""
        self.token_agreement = agree['token_agreement']
        self.action_agreement = agree['action_agreement']
        self.mean_abs_action_diff = agree['mean_abs_action_diff']
        self.max_abs_action_diff = agree['max_abs_action_diff']


@dataclass
class Report:
    settings: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    kernels: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    warmup: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def failures(self) -> list[str]:
        return [c['name'] + ': ' + c['detail'] for c in self.checks if not c['ok']] + self.errors


class Bench:
    """Runs the phases in order, recording as it goes."""

    def __init__(self, settings: Settings, out: Path) -> None:
        import torch  # noqa: PLC0415

        self.torch = torch
        self.s = settings
        self.out = out
        self.start = time.perf_counter()
        self.report = Report(settings=settings.__dict__.copy())
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(16)]
        self.reference: dict[int, tuple[int, ...]] = {}  # image index -> bf16 reference tokens
        self.reference_logits = None
        self.single_graph: dict[int, tuple[int, ...]] = {}
        self.quantized_single: dict[int, tuple[int, ...]] = {}
        self.floor = 1.0  # reference self-agreement (set by reference_floor)
        self.cuda = settings.device.startswith('cuda')
        #: label of the unquantized rows: bf16 on the GPU, float32 in the CPU rehearsal
        self.base = 'bf16' if settings.dtype == 'bfloat16' else settings.dtype

    # --- helpers ------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def save(self) -> None:
        self.report.elapsed_s = round(self.elapsed(), 1)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / 'gpu_bench.json').write_text(json.dumps(self.report.__dict__ | {
            'failures': self.report.failures}, indent=1, default=str))

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.report.checks.append({'name': name, 'ok': bool(ok), 'detail': detail})
        (log.info if ok else log.error)('check %s: %s (%s)', name, 'ok' if ok else 'FAILED',
                                         detail)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        if not self.cuda:
            return None
        return self.torch.cuda.max_memory_allocated() / 2**30

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()

    def over_budget(self, what: str) -> bool:
        if self.elapsed() > self.s.time_budget_s:
            self.report.skipped.append(f'{what} (time budget {self.s.time_budget_s:.0f} s spent)')
            log.warning('skipping %s: time budget spent', what)
            return True
        return False

    def policy(self, quantize: str, decode: str):
        from openvla_ros.model.synthetic import random_policy  # noqa: PLC0415

        start = time.perf_counter()
        policy = random_policy(self.s.size, device=self.s.device, dtype=self.s.dtype,
                               quantize=quantize, seed=0, decode=decode)
        self.sync()
        log.info('built random-%s (%s, quantize=%s) in %.1f s', self.s.size, self.s.dtype,
                 quantize, time.perf_counter() - start)
        return policy, time.perf_counter() - start

    def agreement(self, tokens: dict[int, tuple[int, ...]],
                  against: dict[int, tuple[int, ...]]) -> dict[str, float]:
        from openvla_ros.model.action_tokenizer import ActionTokenizer  # noqa: PLC0415
        from openvla_ros.model.constants import LLAMA2_VOCAB_SIZE, N_ACTION_BINS  # noqa: PLC0415

        keys = sorted(set(tokens) & set(against))
        a = np.array([tokens[k] for k in keys])
        b = np.array([against[k] for k in keys])
        decoder = ActionTokenizer(LLAMA2_VOCAB_SIZE, N_ACTION_BINS)
        diff = np.abs(decoder.decode(a) - decoder.decode(b))
        return {
            'token_agreement': float((a == b).mean()),
            'action_agreement': float((a == b).all(axis=1).mean()),
            'mean_abs_action_diff': float(diff.mean()),
            'max_abs_action_diff': float(diff.max()),
        }

    def time_single(self, policy, path: str, precision: str, n: int,
                    against: dict[int, tuple[int, ...]] | None, note: str = '') -> tuple[
                        Row, dict[int, tuple[int, ...]]]:
        """`n` single predictions on images 0..n-1 (cycled), after `warmup` untimed ones."""
        for i in range(self.s.warmup):
            policy.predict(self.images[i], INSTRUCTION, UNNORM_KEY)
        self.reset_peak()
        latencies, tokens = [], {}
        for i in range(n):
            index = i % len(self.images)
            self.sync()
            start = time.perf_counter()
            prediction = policy.predict(self.images[index], INSTRUCTION, UNNORM_KEY)
            latencies.append(time.perf_counter() - start)
            tokens.setdefault(index, prediction.tokens)
        lat = np.asarray(latencies)
        row = Row(path, precision, 1, n, 1e3 * float(np.percentile(lat, 50)),
                  1e3 * float(np.percentile(lat, 90)), float(n / lat.sum()), self.peak_gib(),
                  note=note)
        if against:
            agree = self.agreement(tokens, against)
            row.set_agreement(agree)
        self.report.rows.append(row.__dict__)
        log.info('%s %s: p50 %.1f ms, %.2f actions/s, agreement %s', path, precision, row.p50_ms,
                 row.actions_per_s, row.token_agreement)
        self.save()
        return row, tokens

    def time_batches(self, policy, precision: str, batches: tuple[int, ...]) -> None:
        """Throughput of `predict_batch` (what the server's batcher calls) per batch size."""
        for batch in batches:
            if self.over_budget(f'{precision} batch {batch}'):
                return
            images = [self.images[i % len(self.images)] for i in range(batch)]
            texts = [INSTRUCTION] * batch
            start = time.perf_counter()
            first = policy.predict_batch(images, texts, UNNORM_KEY)  # warm-up (capture)
            self.sync()
            capture_s = time.perf_counter() - start
            self.reset_peak()
            latencies = []
            for _ in range(self.s.batch_rounds):
                self.sync()
                start = time.perf_counter()
                predictions = policy.predict_batch(images, texts, UNNORM_KEY)
                latencies.append(time.perf_counter() - start)
            lat = np.asarray(latencies)
            row = Row(f'predict_batch ({policy.decode})', precision, batch, self.s.batch_rounds,
                      1e3 * float(np.percentile(lat, 50)), 1e3 * float(np.percentile(lat, 90)),
                      float(batch * len(lat) / lat.sum()), self.peak_gib(),
                      note=f'first call {capture_s:.2f} s (capture)')
            batched = {i: p.tokens for i, p in enumerate(predictions)}
            stable = {i: p.tokens for i, p in enumerate(first)}
            reference = self.single_graph if precision == self.base else self.quantized_single
            known = {i: reference[i % len(self.images)] for i in range(batch)
                     if i % len(self.images) in reference}
            if known:
                agree = self.agreement(batched, known)
                row.set_agreement(agree)
                row.note += '; agreement vs the same precision at batch 1'
                self.check(f'{precision} batch {batch} vs batch 1',
                           agree['token_agreement'] >= MIN_BATCH_AGREEMENT,
                           f'token agreement {agree["token_agreement"]:.4f} '
                           f'(min {MIN_BATCH_AGREEMENT})')
            differ = {i: (stable[i], batched[i]) for i in batched if batched[i] != stable[i]}
            repeat = self.agreement(batched, stable)['token_agreement']
            self.check(f'{precision} batch {batch} repeatable', repeat >= MIN_BATCH_AGREEMENT,
                       f'token agreement of two calls on the same inputs {repeat:.4f} (min '
                       f'{MIN_BATCH_AGREEMENT})' + (f'; rows that changed: {differ}' if differ
                                                    else ''))
            self.report.rows.append(row.__dict__)
            log.info('batch %d %s: %.1f ms, %.1f actions/s', batch, precision, row.p50_ms,
                     row.actions_per_s)
            self.save()

    # --- phases -------------------------------------------------------------------------------
    def environment(self) -> None:
        import torch  # noqa: PLC0415
        import transformers  # noqa: PLC0415

        env: dict[str, Any] = {
            'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
            'python': platform.python_version(),
            'torch': torch.__version__,
            'transformers': transformers.__version__,
            'device': self.s.device,
            'cpu_threads': torch.get_num_threads(),
            'command': ' '.join(sys.argv),
            'carried_site': os.environ.get('OPENVLA_BENCH_SITE', ''),
        }
        if self.cuda:
            props = torch.cuda.get_device_properties(0)
            env['gpu'] = props.name
            env['gpu_memory_gib'] = round(props.total_memory / 2**30, 1)
            env['cuda'] = torch.version.cuda
        self.report.environment.update(env)
        log.info('environment: %s', env)
        self.save()

    def attempt(self, what: str, fn, *args, **kwargs) -> Any:
        """Run one measurement; an exception is recorded (a failure) and the run goes on."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - record, keep measuring the rest
            self.report.errors.append(f'{what}: {type(exc).__name__}: {exc}')
            log.error('%s failed:\n%s', what, traceback.format_exc())
            self.save()
            return None

    def graph_path(self) -> str:
        return ('graph (CUDA graphs, preprocessing on device)' if self.cuda
                else 'graph (eager on CPU)')

    def phase_bf16(self) -> None:
        from openvla_ros.model.quantization import (  # noqa: PLC0415
            int8_kernel,
            TINYGEMM_MAX_ROWS,
        )

        policy, build_s = self.policy('none', 'reference')
        self.report.warmup['bf16_build_s'] = round(build_s, 2)
        self.report.environment['int8_kernel'] = int8_kernel(policy._core.device)
        self.report.environment['int4_tinygemm_max_rows'] = TINYGEMM_MAX_ROWS
        result = self.attempt('reference row', self.time_single, policy,
                              'reference (transformers generate)', self.base,
                              self.s.n_reference, None)
        if result is not None:
            self.reference = result[1]
        self.attempt('reference self-agreement', self.reference_floor, policy)
        policy.decode = 'fast'
        result = self.attempt('fast row', self.time_single, policy,
                              'fast (static cache, eager)', self.base, self.s.n_reference,
                              self.reference)
        if result is not None and result[0].token_agreement is not None:
            self.gate('bf16 fast vs reference', result[0].token_agreement)
        policy.decode = 'graph'
        warm = self.attempt('graph warm-up', policy.warmup, batch_sizes=(1,),
                            instructions=(INSTRUCTION,))
        stats = policy.graph_stats() or {}
        self.report.warmup['bf16_graph_warmup_s'] = None if warm is None else round(warm, 3)
        self.report.warmup['bf16_graph_stats'] = stats
        if stats.get('failures'):
            self.report.errors.append(f'bf16 CUDA graph capture failed: {stats["failures"]}')
        note = '' if warm is None else f'warm-up {warm:.2f} s'
        if self.cuda:  # the decode path alone: the reference's host (PIL) preprocessing
            policy.preprocess = 'host'
            result = self.attempt('graph row (host preprocessing)', self.time_single, policy,
                                  'graph (CUDA graphs, host preprocessing)', self.base,
                                  self.s.n_reference, self.reference)
            policy.preprocess = 'auto'
            if result is not None and result[0].token_agreement is not None:
                self.gate('bf16 graph (host preprocessing) vs reference',
                          result[0].token_agreement)
        result = self.attempt('graph row', self.time_single, policy, self.graph_path(),
                              self.base, self.s.n, self.reference, note=note)
        if result is not None:
            row, self.single_graph = result
            if row.token_agreement is not None:
                self.gate('bf16 graph vs reference', row.token_agreement)
                self.report.targets.append({
                    'target': 'bf16 batch 1 >= 25 actions/s, >= 99 % token agreement',
                    'measured': f'{row.actions_per_s:.1f} actions/s, '
                                f'{100 * row.token_agreement:.1f} %',
                    'met': row.actions_per_s >= TARGETS['bf16_actions_per_s']
                    and row.token_agreement >= TARGETS['bf16_token_agreement']})
        if self.cuda:
            self.attempt('bf16 stages', self.stages, policy, 'bf16')
        # first-step logits of image 0, the baseline of the quantized models' logits check
        self.reference_logits = self.attempt('bf16 logits', self.first_logits, policy)
        self.attempt('kernel rows', self.kernel_rows, policy)
        self.attempt('bf16 batches', self.time_batches, policy, self.base, self.s.batches)
        best = max((r for r in self.report.rows if r['precision'] == self.base
                    and r['batch'] in (8, 16)), key=lambda r: r['actions_per_s'], default=None)
        if best is not None:
            self.report.targets.append({
                'target': 'batch 8-16 through predict_batch >= 150 actions/s',
                'measured': f'{best["actions_per_s"]:.1f} actions/s at batch {best["batch"]} '
                            f'({self.base})',
                'met': best['actions_per_s'] >= TARGETS['batched_actions_per_s']})
        del policy
        self.free()

    def stages(self, policy, precision: str, reps: int = 20) -> None:
        """Median ms of each stage of a batch-1 graph prediction: preprocessing on the device,
        the vision graph replay, the prefill + decode graph replay (CUDA events)."""
        import torch  # noqa: PLC0415

        decoder = policy._core.graph_decoder()
        vision = decoder._vision.get(1)
        llm = next((e for k, e in decoder._llm.items() if k[0] == 1), None)
        timings: dict[str, float] = {}

        def median_ms(fn) -> float:
            times = []
            for _ in range(reps):
                begin = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                begin.record()
                fn()
                end.record()
                end.synchronize()
                times.append(begin.elapsed_time(end))
            return round(float(np.median(times)), 3)

        timings['preprocess_on_device_ms'] = median_ms(
            lambda: policy.processor.preprocess_images_on([self.images[0]], 'cuda'))
        if vision is not None and vision.graph is not None:
            timings['vision_graph_ms'] = median_ms(vision.graph.replay)
        if llm is not None and llm.graph is not None:
            timings['prefill_decode_graph_ms'] = median_ms(llm.graph.replay)
        self.report.warmup[f'{precision}_stage_ms'] = timings
        log.info('%s stages: %s', precision, timings)

    def reference_floor(self, policy) -> None:
        """How often the reference path disagrees with itself when only the batch shape changes
        (each frame twice in a batch of 2): the numerical noise floor of token agreement for these
        random weights, whose top logits are often near-ties."""
        tokens = {}
        for i in range(self.s.n_reference):
            index = i % len(self.images)
            pair = policy.predict_batch([self.images[index]] * 2, [INSTRUCTION] * 2, UNNORM_KEY)
            tokens.setdefault(index, pair[0].tokens)
        agree = self.agreement(tokens, self.reference)
        self.floor = agree['token_agreement']
        self.report.warmup['reference_batch2_vs_batch1_token_agreement'] = round(self.floor, 4)
        log.info('reference vs itself at batch 2: token agreement %.4f', self.floor)

    def gate(self, name: str, agreement: float) -> None:
        """A bf16 path is not broken: see MIN_TOKEN_AGREEMENT (the 99 % target is reported)."""
        self.check(name, agreement >= MIN_TOKEN_AGREEMENT,
                   f'token agreement {agreement:.4f} (min {MIN_TOKEN_AGREEMENT}; the reference '
                   f'agrees with itself at batch 2 on {self.floor:.4f})')

    def first_logits(self, policy):
        """(V,) float32 first-step logits of image 0 (eager own forward)."""
        pixels = policy.processor.preprocess_images([self.images[0]])
        prompt = [policy.processor.prompt_ids(INSTRUCTION)]
        return policy._core.graph_decoder().logits(prompt, pixels, 1)[0, 0]

    def kernel_rows(self, policy) -> None:
        """One Llama MLP projection of each shape, bf16 vs int8 vs int4, timed alone."""
        import torch  # noqa: PLC0415
        from torch import nn  # noqa: PLC0415

        from openvla_ros.model.quantization import (  # noqa: PLC0415
            Int4WeightOnlyLinear,
            Int8WeightOnlyLinear,
        )

        layer = policy._core.language_model.model.layers[0]
        for name in ('self_attn.q_proj', 'mlp.gate_proj', 'mlp.down_proj'):
            linear = layer.get_submodule(name)
            copy = nn.Linear(linear.in_features, linear.out_features, bias=False,
                             device=linear.weight.device, dtype=linear.weight.dtype)
            copy.weight.data.copy_(linear.weight.data)
            variants = {self.base: linear,
                        'int8': Int8WeightOnlyLinear(copy), 'int4': Int4WeightOnlyLinear(copy)}
            for rows in self.s.kernel_rows:
                x = torch.randn(rows, linear.in_features, device=linear.weight.device,
                                dtype=linear.weight.dtype)
                with torch.inference_mode():
                    exact = linear(x).float()
                    for precision, module in variants.items():
                        out = module(x).float()
                        error = float((out - exact).norm() / exact.norm())
                        if precision in MAX_KERNEL_ERROR:
                            self.check(f'{precision} kernel {name} rows {rows}',
                                       error <= MAX_KERNEL_ERROR[precision] and
                                       bool(torch.isfinite(out).all()),
                                       f'relative error {error:.4f} '
                                       f'(max {MAX_KERNEL_ERROR[precision]})')
                        ms = self.time_module(module, x)
                        moved = linear.in_features * linear.out_features * {
                            'int8': 1, 'int4': 0.5}.get(precision, x.element_size())
                        self.report.kernels.append({
                            'layer': name, 'shape': f'{linear.out_features}x{linear.in_features}',
                            'rows': rows, 'precision': precision, 'ms': round(ms, 4),
                            'weight_GB_per_s': round(moved / ms / 1e6, 1),
                            'relative_error': round(error, 5)})
            del variants, copy
        self.save()

    def time_module(self, module, x, reps: int = 20) -> float:
        """Median milliseconds of `module(x)` (CUDA events on a GPU, perf_counter on the CPU)."""
        import torch  # noqa: PLC0415

        times = []
        with torch.inference_mode():
            for _ in range(3):
                module(x)
            for _ in range(reps):
                if self.cuda:
                    begin = torch.cuda.Event(enable_timing=True)
                    end = torch.cuda.Event(enable_timing=True)
                    begin.record()
                    module(x)
                    end.record()
                    end.synchronize()
                    times.append(begin.elapsed_time(end))
                else:
                    start = time.perf_counter()
                    module(x)
                    times.append(1e3 * (time.perf_counter() - start))
        return float(np.median(times))

    def phase_quantized(self, mode: str) -> None:
        policy, build_s = self.policy(mode, 'graph')
        self.free()
        self.report.warmup[f'{mode}_build_and_quantize_s'] = round(build_s, 2)
        if self.cuda:
            self.report.warmup[f'{mode}_resident_gib_after_load'] = round(
                self.torch.cuda.memory_allocated() / 2**30, 3)
        self.reset_peak()
        warm = self.attempt(f'{mode} warm-up', policy.warmup, batch_sizes=(1,),
                            instructions=(INSTRUCTION,))
        stats = policy.graph_stats() or {}
        self.report.warmup[f'{mode}_graph_warmup_s'] = None if warm is None else round(warm, 3)
        self.report.warmup[f'{mode}_graph_stats'] = stats
        if stats.get('failures'):
            self.report.errors.append(f'{mode} CUDA graph capture failed: {stats["failures"]}')
        note = ('' if warm is None else f'warm-up {warm:.2f} s; ') + 'agreement vs bf16 reference'
        result = self.attempt(f'{mode} graph row', self.time_single, policy, self.graph_path(),
                              mode, self.s.n, self.reference, note=note)
        if result is not None:
            row, self.quantized_single = result
            if mode == 'int4':
                peak = 'n/a' if row.peak_gib is None else f'{row.peak_gib:.2f} GiB'
                agree = ('n/a' if row.token_agreement is None
                         else f'{100 * row.token_agreement:.1f} %')
                self.report.targets.append({
                    'target': 'int4 batch 1 >= 40 actions/s at <= 8 GB peak',
                    'measured': f'{row.actions_per_s:.1f} actions/s, peak {peak}, token '
                                f'agreement with bf16 {agree}',
                    'met': row.actions_per_s >= TARGETS['int4_actions_per_s']
                    and row.peak_gib is not None
                    and row.peak_gib * 2**30 / 1e9 <= TARGETS['int4_peak_gib']})
        logits = self.attempt(f'{mode} logits', self.first_logits, policy)
        if logits is not None and self.reference_logits is not None:
            ref = self.reference_logits
            error = float((logits - ref).norm() / ref.norm())
            self.report.warmup[f'{mode}_first_logits_relative_error'] = round(error, 4)
            self.check(f'{mode} model logits vs bf16', error <= MAX_LOGITS_ERROR[mode]
                       and bool(np.isfinite(logits.numpy()).all()),
                       f'relative error of the first-step logits {error:.4f} '
                       f'(max {MAX_LOGITS_ERROR[mode]})')
        if self.cuda:
            self.attempt(f'{mode} stages', self.stages, policy, mode)
        if mode == 'int4':
            from openvla_ros.model.quantization import int4_prefill_path  # noqa: PLC0415

            self.report.environment['int4_prefill'] = int4_prefill_path()
        self.attempt(f'{mode} batches', self.time_batches, policy, mode,
                     self.s.quantized_batches)
        del policy
        self.free()

    def run(self) -> int:
        self.environment()
        phases = [('bf16', self.phase_bf16), ('int8', lambda: self.phase_quantized('int8')),
                  ('int4', lambda: self.phase_quantized('int4'))]
        for name, phase in phases:
            if name != 'bf16' and self.over_budget(f'phase {name}'):
                continue
            try:
                phase()
            except Exception as exc:  # noqa: BLE001 - record, keep measuring the rest
                self.report.errors.append(f'phase {name}: {type(exc).__name__}: {exc}')
                log.error('phase %s failed:\n%s', name, traceback.format_exc())
                self.free()
                if name == 'bf16':
                    break  # every other phase compares against bf16
            self.save()
        self.save()
        markdown = format_markdown(self.report)
        (self.out / 'gpu_bench.md').write_text(markdown)
        print(markdown)
        failures = self.report.failures
        if failures:
            print(f'\nGPU BENCH FAILED: {len(failures)} check(s) failed:', file=sys.stderr)
            for failure in failures:
                print(f'  - {failure}', file=sys.stderr)
            return 1
        print(f'\nall {len(self.report.checks)} checks passed in {self.elapsed():.0f} s')
        return 0


def _pct(value: float | None) -> str:
    return 'n/a' if value is None else f'{100 * value:.1f} %'


def format_markdown(report: Report) -> str:
    """The tables for docs/benchmarks.md (rows, targets, warm-up, kernels, checks)."""
    env = report.environment
    lines = [
        f'- Machine: {env.get("gpu", "CPU")} ({env.get("gpu_memory_gib", "-")} GiB), '
        f'torch {env.get("torch")} (CUDA {env.get("cuda", "-")}), transformers '
        f'{env.get("transformers")}, Python {env.get("python")}; {env.get("date")}.',
        f'- Command: `{env.get("command")}`; whole run {report.elapsed_s:.0f} s. int8 kernel: '
        f'{env.get("int8_kernel", "n/a")}; int4 prefill (> 16 rows): '
        f'{env.get("int4_prefill", "n/a")}.',
        '',
        '| path | precision | batch | n | p50 [ms] | p90 [ms] | actions/s | peak GPU [GiB] | '
        'token agreement | action agreement | mean / max abs action diff | note |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in report.rows:
        peak = 'n/a' if r['peak_gib'] is None else f'{r["peak_gib"]:.2f}'
        diff = ('n/a' if r['mean_abs_action_diff'] is None
                else f'{r["mean_abs_action_diff"]:.4f} / {r["max_abs_action_diff"]:.4f}')
        agreement = 'baseline' if r['token_agreement'] is None and r['batch'] == 1 and \
            r['path'].startswith('reference') else _pct(r['token_agreement'])
        lines.append(
            f'| {r["path"]} | {r["precision"]} | {r["batch"]} | {r["n"]} | {r["p50_ms"]:.1f} | '
            f'{r["p90_ms"]:.1f} | {r["actions_per_s"]:.1f} | {peak} | {agreement} | '
            f'{_pct(r["action_agreement"])} | {diff} | {r["note"]} |')
    if report.targets:
        lines += ['', '| target | measured | met |', '|---|---|---|']
        lines += [f'| {t["target"]} | {t["measured"]} | {"yes" if t["met"] else "NO"} |'
                  for t in report.targets]
    if report.warmup:
        lines += ['', 'Build, warm-up (CUDA graph capture) and checks: `'
                  + json.dumps(report.warmup, default=str) + '`']
    if report.kernels:
        lines += ['', '| layer | shape | rows | precision | ms | weight GB/s | rel. error |',
                  '|---|---|---|---|---|---|---|']
        lines += [f'| {k["layer"]} | {k["shape"]} | {k["rows"]} | {k["precision"]} | '
                  f'{k["ms"]:.4f} | {k["weight_GB_per_s"]} | {k["relative_error"]} |'
                  for k in report.kernels]
    failed = [c for c in report.checks if not c['ok']]
    lines += ['', f'Checks: {len(report.checks) - len(failed)} of {len(report.checks)} passed'
              + ('' if not failed else '; FAILED: ' + '; '.join(
                  f'{c["name"]} ({c["detail"]})' for c in failed))]
    if report.errors:
        lines += ['Errors: ' + '; '.join(report.errors)]
    if report.skipped:
        lines += ['Skipped: ' + '; '.join(report.skipped)]
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m openvla_ros.metrics.gpu_bench',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True, type=Path, help='folder for the JSON and table')
    parser.add_argument('--cpu-rehearsal', action='store_true',
                        help='tiny model on the CPU (float32): the same phases and checks')
    parser.add_argument('--n', type=int, default=None, help='timed single predictions per row')
    parser.add_argument('--time-budget', type=float, default=None,
                        help='seconds after which later phases are skipped (and reported)')
    parser.add_argument('--expect-import', action='append', default=[],
                        help='module that must import (a carried wheel), recorded with its path')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s',
                        stream=sys.stderr)
    settings = Settings.rehearsal() if args.cpu_rehearsal else Settings()
    if args.n is not None:
        settings.n = args.n
    if args.time_budget is not None:
        settings.time_budget_s = args.time_budget
    if not args.cpu_rehearsal:
        import torch  # noqa: PLC0415

        if not torch.cuda.is_available():
            print('gpu_bench: no CUDA device; use --cpu-rehearsal on a machine without one',
                  file=sys.stderr)
            return 2
    bench = Bench(settings, args.out)
    for name in args.expect_import:
        import importlib  # noqa: PLC0415

        module = importlib.import_module(name)
        bench.report.environment.setdefault('carried_imports', {})[name] = getattr(
            module, '__file__', '?')
    code = bench.run()
    return code


if __name__ == '__main__':
    sys.exit(main())
