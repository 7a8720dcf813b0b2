"""LoRA-GA: start the adapter so that its first step best approximates a full fine-tuning gradient step.

Reference: S. Wang, L. Yu, J. Li, "LoRA-GA: Low-Rank Adaptation with Gradient Approximation", NeurIPS 2024
(arXiv 2407.05000); PEFT `init_lora_weights="lora_ga"` with `LoraGAConfig` (a port with different scaling).

With the first full-weight gradient G = ∂L/∂W = U S Vᵀ (averaged over the init batches) and rank r:

- variant "stable" (the authors' rule, our default): lora_A = ζ·V[:, :r]ᵀ, lora_B = ζ·U[:, r:2r] with the
  "stable" scale ζ = out^{1/4} / √γ (γ = 16) on BOTH factors, no singular values.
- variant "peft" (PEFT 0.21 `direction="ArB2r", scale="stable"`): lora_A = V[:, :r]ᵀ,
  lora_B = ζ·U[:, r:2r]·diag(S[r:2r]), i.e. B carries the singular values and ζ, A is unscaled.

Both then shift the base by −s·B·A; we instead freeze s·B·A as the layer's low-rank offset (function
unchanged, base untouched; the exported adapter is the rank-2r conversion).

G is formed densely here, once per target layer, because LoRA-GA is defined by the SVD of G (like PEFT's
`preprocess_loraga`, which also stores every target's weight gradient): peak extra memory is one fp32 out×in
matrix per adapted layer during the init. The SVD is exact for small layers and a seeded randomized SVD
(2r + oversample columns, `niter` power iterations, like PEFT's `svd_lowrank(niter=4)`) for large ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .lora import adapter_items, set_start
from .pissa import top_singular_triplets

VARIANTS = ("stable", "peft")


def dense_weight_gradients(
    model: nn.Module, layers: dict[str, nn.Module], batches: Iterable, loss_fn: Callable
) -> dict[str, torch.Tensor]:
    """The mean over `batches` of ∂L/∂W (out×in, fp32 or fp64) for every adapter layer's frozen base weight.

    Only the base weights require grad during this pass (adapter factors and everything else are frozen
    temporarily and restored afterwards, grads included), so no optimizer state or .grad is disturbed.
    """
    params = list(model.parameters())
    saved = [(p, p.requires_grad, p.grad) for p in params]
    weights = {name: layer.base.weight for name, layer in layers.items()}
    try:
        for p in params:
            p.requires_grad_(False)
            p.grad = None
        for w in weights.values():
            w.requires_grad_(True)
        count = 0
        with torch.enable_grad():
            for batch in batches:
                loss = loss_fn(model, batch)
                if not torch.is_tensor(loss) or loss.dim() != 0:
                    raise ValueError("lora_ga_init: loss_fn(model, batch) must return a scalar tensor")
                loss.backward()
                count += 1
        if count == 0:
            raise ValueError("lora_ga_init needs at least one batch in `batches` to estimate the gradient")
        grads = {}
        for name, layer in layers.items():
            g = weights[name].grad
            if g is None:
                raise ValueError(f"lora_ga_init: the loss does not depend on layer {name!r} (no gradient reached it)")
            g = g.to(torch.promote_types(g.dtype, torch.float32)) / count
            grads[name] = g.t() if layer.is_conv1d else g
        return grads
    finally:
        for p, requires_grad, grad in saved:
            p.requires_grad_(requires_grad)
            p.grad = grad


@torch.no_grad()
def lora_ga_factors(
    grad: torch.Tensor,
    rank: int,
    *,
    variant: str = "stable",
    gamma: float = 16.0,
    niter: int | None = 4,
    oversample: int = 16,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lora_A r×in, lora_B out×r) of LoRA-GA from one layer's gradient G (out×in); see the module docstring."""
    if variant not in VARIANTS:
        raise ValueError(f"lora_ga variant must be one of {VARIANTS}, got {variant!r}")
    out_f, in_f = grad.shape
    if 2 * rank > min(out_f, in_f):
        raise ValueError(
            f"LoRA-GA needs 2·rank <= min(out, in) (it uses singular vectors 1..2r); rank {rank} is too large "
            f"for a {out_f}×{in_f} layer"
        )
    exact = None if min(out_f, in_f) <= 4 * (2 * rank + oversample) else niter
    u, s, v = top_singular_triplets(grad, 2 * rank, niter=exact, oversample=oversample, seed=seed)
    zeta = out_f**0.25 / math.sqrt(gamma)
    lora_A = v[:, :rank].T
    lora_B = u[:, rank : 2 * rank]
    if variant == "stable":
        return zeta * lora_A, zeta * lora_B
    return lora_A, zeta * lora_B * s[rank : 2 * rank]


def lora_ga_init(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable,
    *,
    variant: str = "stable",
    gamma: float = 16.0,
    niter: int | None = 4,
    seed: int = 0,
) -> dict[str, nn.Module]:
    """LoRA-GA start (Wang et al. 2024) on every adapter layer; frozen offset instead of a base shift.

    Args:
        model: a model with injected adapters (either parametrization).
        batches: the batches whose mean gradient defines G (all of them are used, once).
        loss_fn: `loss_fn(model, batch) -> scalar tensor`.
        variant: "stable" (the authors' scaling, default) or "peft" (PEFT's port); see the module docstring.
        gamma: γ of the stable scale ζ = out^{1/4}/√γ.
        niter: power iterations of the randomized SVD used for large layers (None: always exact).
        seed: seed of the randomized SVD sketch.
    Returns the adapter layers; the model's outputs are unchanged.
    """
    if variant not in VARIANTS:
        raise ValueError(f"lora_ga_init: variant must be one of {VARIANTS}, got {variant!r}")
    layers = adapter_items(model, "lora_ga_init")
    for name, layer in layers.items():
        if getattr(layer, "lora_magnitude", None) is not None:
            raise ValueError(f"lora_ga_init: layer {name!r} uses DoRA; LoRA-GA + DoRA is not supported")
    grads = dense_weight_gradients(model, layers, batches, loss_fn)
    for index, (name, layer) in enumerate(layers.items()):
        lora_A, lora_B = lora_ga_factors(
            grads.pop(name), layer.rank, variant=variant, gamma=gamma, niter=niter, seed=seed * 7919 + index
        )
        set_start(layer, lora_A, lora_B, layer.scaling)
    return layers
