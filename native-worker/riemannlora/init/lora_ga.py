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

G = mean over the init batches of ∂L/∂W, with the model in eval mode (no dropout; the training flag is
restored). Two ways to get its top-2r singular triplets:

- gradient="probe" (default): never forms G. A randomized SVD (Halko, Martinsson & Tropp 2011) whose
  products G·M and Gᵀ·M come from ordinary backward passes through zero-valued probes added to each adapter
  layer's output by a forward hook (x ↦ (x M) Pᵀ at P = 0 gives ∂L/∂P = G M) — the BackPropRSVD trick of
  RiemannLoRA's LOI (docs/method.md §5) applied to LoRA-GA. Sketch width min(2r + oversample, out, in),
  `power_iters` power iterations, 2·(power_iters + 1) passes over the batches; exact when the sketch spans
  the smaller side.
- gradient="dense": G is formed for every target layer (like PEFT's `preprocess_loraga`: one fp32 out×in
  matrix per layer), one pass; exact SVD for small layers, a seeded randomized SVD with `power_iters`
  iterations for large ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .lora import adapter_items, set_start
from .pissa import top_singular_triplets

VARIANTS = ("stable", "peft")
GRADIENTS = ("probe", "dense")


class _EvalMode:
    """Context: the model in eval mode (no dropout, so every pass sees the same G), flag restored after."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def _scalar_loss(loss_fn: Callable, model: nn.Module, batch) -> torch.Tensor:
    loss = loss_fn(model, batch)
    if not torch.is_tensor(loss) or loss.dim() != 0:
        raise ValueError("lora_ga_init: loss_fn(model, batch) must return a scalar tensor")
    return loss


def _probe_products(
    model: nn.Module, layers: dict[str, nn.Module], batches: list, loss_fn: Callable, mats: dict, side: str
) -> dict[str, torch.Tensor]:
    """Mean over `batches` of G·M (side "right", M in×k) or Gᵀ·M (side "left", M out×k) for every layer.

    A forward hook adds x·M·Pᵀ (right) or x·P·Mᵀ (left) to the layer's output with a zero probe P, so the
    model's value is unchanged and ∂L/∂P = G M (resp. Gᵀ M): G's products from one ordinary backward.
    """
    probes, handles = {}, []
    for name, layer in layers.items():
        m = mats[name]
        rows = layer.out_features if side == "right" else layer.in_features
        probe = torch.zeros(rows, m.shape[1], dtype=m.dtype, device=m.device, requires_grad=True)
        probes[name] = probe

        def hook(module, inputs, output, m=m, probe=probe):
            x = inputs[0]
            m_x, p_x = m.to(x.dtype), probe.to(x.dtype)
            if side == "right":
                return output + F.linear(F.linear(x, m_x.t()), p_x)
            return output + F.linear(F.linear(x, p_x.t()), m_x)

        handles.append(layer.register_forward_hook(hook))
    names = list(probes)
    sums = {n: torch.zeros_like(probes[n]) for n in names}
    try:
        with torch.enable_grad():
            for batch in batches:
                grads = torch.autograd.grad(
                    _scalar_loss(loss_fn, model, batch), [probes[n] for n in names], allow_unused=True
                )
                for n, g in zip(names, grads, strict=True):
                    if g is None:
                        raise ValueError(f"lora_ga_init: the loss does not depend on layer {n!r}")
                    sums[n] += g
    finally:
        for h in handles:
            h.remove()
    return {n: s / len(batches) for n, s in sums.items()}


@torch.no_grad()
def probe_gradient_svd(
    model: nn.Module,
    layers: dict[str, nn.Module],
    batches: list,
    loss_fn: Callable,
    *,
    oversample: int = 16,
    power_iters: int = 2,
    seed: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Top-2r singular triplets (U out×k', S, V in×k') of each layer's mean gradient G, G never formed.

    Randomized range finder on probe products (see `_probe_products`): Y = qr(G Ω); `power_iters` times
    Z = qr(Gᵀ Y), Y = qr(G Z); then svd(Yᵀ G) with Yᵀ G = (Gᵀ Y)ᵀ. Ω is drawn on the CPU from `seed` in
    module order (identical on every data-parallel rank).
    """
    if not batches:
        raise ValueError("lora_ga_init needs at least one batch in `batches` to estimate the gradient")
    gen = torch.Generator().manual_seed(int(seed))
    omega = {}
    for name, layer in layers.items():
        k = min(2 * layer.rank + oversample, layer.out_features, layer.in_features)
        like = {"device": layer.offset_A.device, "dtype": layer.geometry_dtype}
        omega[name] = torch.randn(layer.in_features, k, generator=gen, dtype=torch.float64).to(**like)

    def orth(mats):
        return {n: torch.linalg.qr(m).Q for n, m in mats.items()}

    y = orth(_probe_products(model, layers, batches, loss_fn, omega, "right"))
    for _ in range(power_iters):
        z = orth(_probe_products(model, layers, batches, loss_fn, y, "left"))
        y = orth(_probe_products(model, layers, batches, loss_fn, z, "right"))
    gty = _probe_products(model, layers, batches, loss_fn, y, "left")  # Gᵀ Y, in×k
    out = {}
    for name, layer in layers.items():
        u_small, s, vh = torch.linalg.svd(gty[name].t(), full_matrices=False)
        k2 = 2 * layer.rank
        out[name] = ((y[name] @ u_small)[:, :k2], s[:k2], vh[:k2].t())
    return out


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
                _scalar_loss(loss_fn, model, batch).backward()
                count += 1
        if count == 0:
            raise ValueError("lora_ga_init needs at least one batch in `batches` to estimate the gradient")
        grads = {}
        for name, layer in layers.items():
            g = weights[name].grad
            if g is None:
                raise ValueError(
                    f"lora_ga_init: the loss does not depend on layer {name!r} (no gradient reached it)"
                )
            g = g.to(torch.promote_types(g.dtype, torch.float32)) / count
            grads[name] = g.t() if layer.is_conv1d else g
        return grads
    finally:
        for p, requires_grad, grad in saved:
            p.requires_grad_(requires_grad)
            p.grad = grad


def _check_rank(rank: int, out_f: int, in_f: int) -> None:
    if 2 * rank > min(out_f, in_f):
        raise ValueError(
            f"LoRA-GA needs 2·rank <= min(out, in) (it uses singular vectors 1..2r); rank {rank} is too "
            f"large for a {out_f}×{in_f} layer"
        )


def factors_from_svd(
    u: torch.Tensor,
    s: torch.Tensor,
    v: torch.Tensor,
    rank: int,
    *,
    variant: str = "stable",
    gamma: float = 16.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lora_A r×in, lora_B out×r) of LoRA-GA from G's top-2r triplets U (out×2r), S, V (in×2r)."""
    if variant not in VARIANTS:
        raise ValueError(f"lora_ga variant must be one of {VARIANTS}, got {variant!r}")
    zeta = u.shape[0] ** 0.25 / math.sqrt(gamma)  # the "stable" scale out^{1/4}/√γ
    lora_A = v[:, :rank].T
    lora_B = u[:, rank : 2 * rank]
    if variant == "stable":
        return zeta * lora_A, zeta * lora_B
    return lora_A, zeta * lora_B * s[rank : 2 * rank]


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
    """(lora_A r×in, lora_B out×r) of LoRA-GA from one layer's gradient G (out×in); see the module doc."""
    if variant not in VARIANTS:
        raise ValueError(f"lora_ga variant must be one of {VARIANTS}, got {variant!r}")
    out_f, in_f = grad.shape
    _check_rank(rank, out_f, in_f)
    exact = None if min(out_f, in_f) <= 4 * (2 * rank + oversample) else niter
    u, s, v = top_singular_triplets(grad, 2 * rank, niter=exact, oversample=oversample, seed=seed)
    return factors_from_svd(u, s, v, rank, variant=variant, gamma=gamma)


def lora_ga_init(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable,
    *,
    variant: str = "stable",
    gamma: float = 16.0,
    gradient: str = "probe",
    oversample: int = 16,
    power_iters: int = 2,
    seed: int = 0,
) -> dict[str, nn.Module]:
    """LoRA-GA start (Wang et al. 2024) on every adapter layer; frozen offset instead of a base shift.

    Args:
        model: a model with injected adapters (either parametrization).
        batches: the batches whose mean gradient defines G (all of them are used, once).
        loss_fn: `loss_fn(model, batch) -> scalar tensor`.
        variant: "stable" (the authors' scaling, default) or "peft" (PEFT's port); see the module docstring.
        gamma: γ of the stable scale ζ = out^{1/4}/√γ.
        gradient: "probe" (default; G never formed) or "dense" (G formed per layer); see the module doc.
        oversample, power_iters: the randomized SVD's extra columns and power iterations.
        seed: seed of the randomized SVD sketch.
    Returns the adapter layers; the model's outputs are unchanged.
    """
    if variant not in VARIANTS:
        raise ValueError(f"lora_ga_init: variant must be one of {VARIANTS}, got {variant!r}")
    layers = adapter_items(model, "lora_ga_init")
    for name, layer in layers.items():
        if getattr(layer, "lora_magnitude", None) is not None:
            raise ValueError(f"lora_ga_init: layer {name!r} uses DoRA; LoRA-GA + DoRA is not supported")
    if gradient not in GRADIENTS:
        raise ValueError(f"lora_ga_init: gradient must be one of {GRADIENTS}, got {gradient!r}")
    if oversample < 0 or power_iters < 0:
        raise ValueError(f"oversample and power_iters must be >= 0, got {oversample}, {power_iters}")
    for layer in layers.values():
        _check_rank(layer.rank, layer.out_features, layer.in_features)
    batches = list(batches)
    with _EvalMode(model):
        if gradient == "probe":
            triplets = probe_gradient_svd(
                model, layers, batches, loss_fn, oversample=oversample, power_iters=power_iters, seed=seed
            )
            starts = {
                n: factors_from_svd(*triplets[n], layer.rank, variant=variant, gamma=gamma)
                for n, layer in layers.items()
            }
        else:
            grads = dense_weight_gradients(model, layers, batches, loss_fn)
            starts = {}
            for index, (name, layer) in enumerate(layers.items()):
                starts[name] = lora_ga_factors(
                    grads.pop(name),
                    layer.rank,
                    variant=variant,
                    gamma=gamma,
                    niter=power_iters,
                    oversample=oversample,
                    seed=seed * 7919 + index,
                )
    for name, layer in layers.items():
        set_start(layer, *starts[name], layer.scaling)
    return layers
