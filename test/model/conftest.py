"""Fixtures of the model tests: one tiny checkpoint per session, loaded policies, the tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from openvla_ros.model import constants as const

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures'
REFERENCE = FIXTURES / 'openvla_reference'


@pytest.fixture(scope='session')
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint (seed 0), built once per session."""
    from openvla_ros.model.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp('tiny') / 'openvla-tiny', seed=0)


@pytest.fixture(scope='session')
def policy(tiny_dir: Path):
    """The tiny checkpoint as a float32 CPU policy with fast decoding."""
    from openvla_ros.model import OpenVLAPolicy

    return OpenVLAPolicy.load(str(tiny_dir))


@pytest.fixture(scope='session')
def tokenizer():
    """The real Llama-2 tokenizer shipped in the package (the only copy in the repo)."""
    from openvla_ros.model.loading import load_tokenizer

    return load_tokenizer(const.TOKENIZER_DIR)
