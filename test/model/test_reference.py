"""Our implementation vs the official OpenVLA code (golden outputs, see the fixture README)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import sys

import numpy as np
import pytest
import torch

from openvla_ros.model import OpenVLAPolicy
from openvla_ros.model.loading import read_state_dict
from openvla_ros.model.tiny import weights_sha256

REFERENCE = Path(__file__).resolve().parents[1] / 'fixtures' / 'openvla_reference'
GOLDEN = json.loads((REFERENCE / 'golden.json').read_text())
sys.path.insert(0, str(REFERENCE))
from golden_inputs import image_sha256, make_image  # noqa: E402

CASES = GOLDEN['cases']


@pytest.fixture(scope='module')
def policies(tiny_dir: Path) -> dict[bool, OpenVLAPolicy]:
    tiny = json.loads((REFERENCE / 'tiny_model.json').read_text())
    digest = weights_sha256(read_state_dict(tiny_dir, progress=False))
    if digest != tiny['weights_sha256_bf16']:
        pytest.fail(
            f'tiny weights changed (sha {digest[:12]} != {tiny["weights_sha256_bf16"][:12]}, '
            f'built with {tiny["built_with"]}): regenerate golden.json as in README.md'
        )
    return {crop: OpenVLAPolicy.load(str(tiny_dir), center_crop=crop) for crop in (False, True)}


def _image(case: dict) -> np.ndarray:
    image = make_image(case['kind'], case['seed'], case['height'], case['width'])
    assert image_sha256(image) == case['image_sha256'], 'numpy RNG stream changed'
    return image


@pytest.mark.parametrize('case', CASES, ids=[c['name'] for c in CASES])
def test_inputs_match_the_official_processor(policies, case: dict) -> None:
    policy = policies[case['center_crop']]
    assert policy.processor.prompt_ids(case['instruction']) == case['prompt_ids']
    pixels = policy.processor.preprocess_image(_image(case)).numpy().astype(np.float32)
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == case['pixel_values_sha256']
    assert float(pixels.astype(np.float64).sum()) == pytest.approx(case['pixel_values_sum'])


@pytest.mark.parametrize('case', CASES, ids=[c['name'] for c in CASES])
def test_first_step_logits_match_the_official_model(policies, case: dict) -> None:
    policy = policies[case['center_crop']]
    pixels = policy.processor.preprocess_images([_image(case)])
    with torch.no_grad():
        logits = policy.model([case['prompt_ids']], pixels)[0, -1]
    top = torch.topk(logits, 5)
    assert top.indices.tolist() == case['first_step_top5_ids']
    np.testing.assert_allclose(top.values.numpy(), case['first_step_top5_logits'], atol=1e-4)


@pytest.mark.parametrize('decode', ['fast', 'reference'])
@pytest.mark.parametrize('case', CASES, ids=[c['name'] for c in CASES])
def test_tokens_and_actions_match_official_predict_action(policies, case: dict, decode) -> None:
    policy = policies[case['center_crop']]
    policy.decode = decode
    try:
        pred = policy.predict(_image(case), case['instruction'], case['unnorm_key'])
    finally:
        policy.decode = 'fast'
    assert list(pred.tokens) == case['tokens']
    np.testing.assert_allclose(pred.action, case['action'], rtol=0, atol=1e-6)


def test_golden_records_the_official_versions() -> None:
    versions = GOLDEN['versions']
    assert versions['transformers'] == '4.40.1' and versions['timm'] == '0.9.10'
