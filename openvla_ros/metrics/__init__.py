"""Metrics: latency statistics, success intervals, reports and benchmarks."""
