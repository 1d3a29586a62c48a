"""The Wilson score interval reported by evaluate and learn."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
import pytest

from openvla_ros.metrics.success import wilson_interval


def test_known_values():
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert wilson_interval(10, 20) == pytest.approx((0.2993, 0.7007), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_the_interval_holds_the_rate_and_mirrors_failures(case):
    successes, n = case
    low, high = wilson_interval(successes, n)
    assert 0.0 <= low <= successes / n <= high <= 1.0
    mirror = wilson_interval(n - successes, n)
    assert mirror == pytest.approx((1 - high, 1 - low), abs=1e-12)
