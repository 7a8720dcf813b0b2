"""LoRA+: a larger learning rate for lora_B than for lora_A.

Reference: S. Hayou, N. Ghosh, B. Yu, "LoRA+: Efficient Low Rank Adaptation of Large Models",
arXiv 2402.12354 (2024); PEFT `peft.optimizers.create_loraplus_optimizer` (same grouping rules).
"""

from __future__ import annotations

import torch
from torch import nn

from .scaled_adamw import lora_factor_pairs


def create_loraplus_optimizer(
    model: nn.Module,
    lr: float,
    ratio: float = 16.0,
    optimizer_cls: type[torch.optim.Optimizer] = torch.optim.AdamW,
    weight_decay: float = 0.0,
    **kwargs,
) -> torch.optim.Optimizer:
    """Build `optimizer_cls` with LoRA+ parameter groups: η_B = ratio · η_A (Hayou et al. 2024).

    Groups (like PEFT): every `lora_B` and every trainable 1-D parameter (DoRA's magnitude vector) gets
    `lr * ratio`; every `lora_A` and any other trainable parameter gets `lr`. Each group's `"name"` says which
    it is, so schedulers and loggers can tell them apart; a learning-rate scheduler scales both groups and
    keeps the ratio.

    Args:
        model: a model with factor-parametrized adapters (`inject_adapters(..., parametrization="factors")`).
        lr: η_A. ratio: η_B / η_A (≥ 1; the paper suggests about 16).
        optimizer_cls: the optimizer to instantiate (AdamW by default). weight_decay: decoupled, all groups.
        **kwargs: passed to `optimizer_cls` (betas, eps, ...).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            "create_loraplus_optimizer needs the model (to tell lora_A from lora_B), not a params list"
        )
    if ratio < 1:
        raise ValueError(
            f"create_loraplus_optimizer: ratio = η_B/η_A should be >= 1 (paper: ~16), got {ratio}"
        )
    pairs = lora_factor_pairs(model)
    if not pairs:
        raise ValueError(
            "create_loraplus_optimizer: the model has no factor-parametrized LoRA layers; inject adapters "
            "with parametrization='factors' (LoRA+ is a rule for the lora_A/lora_B factors)."
        )
    b_ids = {id(b) for _, b in pairs}
    group_a: list[nn.Parameter] = []
    group_b: list[nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (group_b if id(p) in b_ids or p.ndim == 1 else group_a).append(p)
    groups = [
        {"params": group_a, "lr": lr, "name": "loraplus_A"},
        {"params": group_b, "lr": lr * ratio, "name": "loraplus_B"},
    ]
    return optimizer_cls(groups, lr=lr, weight_decay=weight_decay, **kwargs)
