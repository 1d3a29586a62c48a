"""`bin_sigma`: Gaussian soft targets over neighbouring action bins. One-hot when 0 (OpenVLA's
loss, unchanged), a graded loss otherwise whose minimiser still decodes to the expert's bin."""

from __future__ import annotations

import math

import pytest
import torch

from openvla_ros.finetune.config import FinetuneConfig
from openvla_ros.finetune.trainer import action_token_loss
from openvla_ros.model.action_tokenizer import ActionTokenizer

TOKENIZER = ActionTokenizer()
VOCAB = 32064  # the padded vocabulary of the real checkpoint
FIRST = TOKENIZER.action_token_begin_idx + 1  # the lowest action-token id
STOP = 2  # the stop token (EOS) that ends every action


def _peaked(at: int) -> torch.Tensor:
    logits = torch.zeros(1, VOCAB)
    logits[0, at] = 12.0
    return logits


def test_sigma_zero_is_openvlas_cross_entropy_exactly():
    torch.manual_seed(0)
    logits = torch.randn(6, VOCAB)
    gold = torch.tensor([FIRST, FIRST + 100, TOKENIZER.vocab_size - 1, STOP, FIRST + 7, 31900])
    expected = torch.nn.functional.cross_entropy(logits, gold)
    assert torch.equal(action_token_loss(logits, gold, TOKENIZER, 0.0), expected)


def test_a_prediction_one_bin_off_costs_less_than_one_far_off_with_soft_targets():
    gold = torch.tensor([FIRST + 120])
    near, far = _peaked(FIRST + 121), _peaked(FIRST + 150)
    soft_near = float(action_token_loss(near, gold, TOKENIZER, 4.0))
    soft_far = float(action_token_loss(far, gold, TOKENIZER, 4.0))
    hard_near = float(action_token_loss(near, gold, TOKENIZER, 0.0))
    hard_far = float(action_token_loss(far, gold, TOKENIZER, 0.0))
    assert soft_near < soft_far - 1.0
    assert hard_near == pytest.approx(hard_far)  # one-hot: every wrong bin is as wrong


def _gaussian_logits(centre: int, sigma: float) -> torch.Tensor:
    """Logits whose action-token probabilities are a Gaussian around `centre` (other tokens
    about 0): what a model predicting "about this bin" outputs."""
    logits = torch.full((1, VOCAB), -60.0)
    ids = torch.arange(FIRST, TOKENIZER.vocab_size, dtype=torch.float32)
    logits[0, FIRST : TOKENIZER.vocab_size] = -((ids - centre) ** 2) / (2 * sigma**2)
    return logits


@pytest.mark.parametrize('offset', [0, 1, 128, 254, 255])
def test_the_loss_is_least_for_a_prediction_centred_on_the_gold_bin_even_at_the_range_ends(
    offset,
):
    gold = torch.tensor([FIRST + offset])
    losses = {
        shift: float(action_token_loss(_gaussian_logits(FIRST + offset + shift, 6.0), gold,
                                       TOKENIZER, 6.0))
        for shift in (-3, -1, 0, 1, 3)
    }  # fmt: skip
    assert min(losses, key=losses.get) == 0, losses
    # and that prediction decodes to the gold bin (the policy takes the argmax)
    best = _gaussian_logits(FIRST + offset, 6.0).argmax(dim=1)
    assert int(best) == FIRST + offset


def test_the_stop_token_keeps_a_one_hot_target_and_a_finite_gradient():
    torch.manual_seed(1)
    logits = torch.randn(2, VOCAB, requires_grad=True)
    gold = torch.tensor([STOP, FIRST + 40])
    loss = action_token_loss(logits, gold, TOKENIZER, 3.0)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    stop_only = action_token_loss(logits[:1], gold[:1], TOKENIZER, 3.0)
    expected = torch.nn.functional.cross_entropy(logits[:1], gold[:1])
    assert torch.allclose(stop_only, expected)


@pytest.mark.parametrize('sigma', [-1.0, math.nan])
def test_a_negative_or_nan_bin_sigma_is_refused(sigma):
    with pytest.raises(ValueError, match='bin_sigma'):
        FinetuneConfig(model='m', data='d', out='o', bin_sigma=sigma)
