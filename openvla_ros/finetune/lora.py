"""LoRA (peft) on every linear layer of our model, optionally on a 4-bit base (QLoRA).

OpenVLA uses `LoraConfig(r=32, lora_alpha=min(r, 16), lora_dropout=0, target_modules='all-linear',
init_lora_weights='gaussian')`. peft's 'all-linear' shorthand drops the output layer only for
transformers `PreTrainedModel`s, and our model is a plain `nn.Module`, so the target list is built
here: every `nn.Linear` (bitsandbytes' Linear4bit is one) except `language_model.lm_head`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ['EXCLUDED_MODULES', 'add_lora', 'linear_target_modules', 'trainable_parameters']

#: Kept out of LoRA, as peft's 'all-linear' does for the output embedding of a causal LM.
EXCLUDED_MODULES = ('language_model.lm_head',)


def linear_target_modules(model: nn.Module) -> list[str]:
    """Qualified names of the linear layers LoRA adapts (sorted)."""
    return sorted(
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name not in EXCLUDED_MODULES
    )


def add_lora(model: nn.Module, *, rank: int, alpha: int, dropout: float) -> Any:
    """Freeze `model` and wrap it in a peft `PeftModel` with LoRA on all linear layers.

    Trainable LoRA weights are kept in float32 (AdamW on bf16 weights loses small updates;
    autocast still runs the matmuls in the compute dtype).

    Args:
        model: our `OpenVLAForActionPrediction` (possibly with 4-bit linear layers).
        rank: LoRA rank.
        alpha: LoRA alpha.
        dropout: LoRA dropout.
    """
    from peft import get_peft_model, LoraConfig

    for param in model.parameters():
        param.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=linear_target_modules(model),
        init_lora_weights='gaussian',
    )
    peft_model = get_peft_model(model, config)
    for param in peft_model.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    return peft_model


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
