"""Random-weight policies for benchmarks: the released sizes exactly, and the real code path."""

from __future__ import annotations

from accelerate import init_empty_weights
import numpy as np
import pytest

from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.synthetic import random_config, random_policy


def test_the_random_7b_architecture_has_the_released_parameter_count():
    with init_empty_weights():  # meta tensors: no memory
        model = OpenVLAForActionPrediction(random_config('7b'))
    total = sum(p.numel() for p in model.parameters())
    assert total == 7_541_237_184  # openvla/openvla-7b: 7.54 B parameters
    assert sum(p.numel() for p in model.language_model.parameters()) == 6_738_939_904


def test_a_random_tiny_policy_predicts_through_both_decode_paths_identically():
    policy = random_policy('tiny', device='cpu', dtype='float32', seed=3)
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    fast = policy.predict(image, 'pick up the cup', 'bridge_orig')
    policy.decode = 'reference'
    reference = policy.predict(image, 'pick up the cup', 'bridge_orig')
    assert fast.tokens == reference.tokens and len(fast.tokens) == 7
    assert np.all(np.isfinite(fast.action))


def test_unknown_random_sizes_and_missing_cuda_are_refused():
    with pytest.raises(ValueError, match="unknown random model size '13b'"):
        random_config('13b')
    import torch  # noqa: PLC0415

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            random_policy('tiny', device='cuda')
