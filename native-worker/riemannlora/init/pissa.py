"""PiSSA: start the adapter at the principal (top-r) singular part of the frozen weight.

Reference: F. Meng, Z. Wang, M. Zhang, "PiSSA: Principal Singular Values and Singular Vectors Adaptation of
Large Language Models", NeurIPS 2024 (arXiv 2404.02948); PEFT `init_lora_weights="pissa"` and
`"pissa_niter_K"` (randomized SVD with K subspace iterations).

With W = U S Vᵀ and the layer's scaling s, PEFT's semantics are
    lora_B = U_r diag(√(S_r / s)),   lora_A = diag(√(S_r / s)) V_rᵀ,   base ← W − s · lora_B · lora_A.
We do not mutate the base: the same s·B·A is frozen as the layer's low-rank offset, so the model function is
unchanged at the start and the adapter exported relative to the ORIGINAL base is the rank-2r conversion
[B | −B₀]·[A ; A₀] (PEFT's `path_initial_model_for_weight_conversion`). On a manifold layer (s = 1) the
start is the point X₀ = U_r S_r V_rᵀ.
"""

from __future__ import annotations

import torch
from torch import nn

from .lora import adapter_items, set_start


@torch.no_grad()
def top_singular_triplets(
    matrix: torch.Tensor, k: int, *, niter: int | None = None, oversample: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k singular triplets (U m×k, S k, V n×k) of `matrix`, in at least fp32.

    niter=None: exact (`torch.linalg.svd`). niter=K: randomized range finder (Halko et al. 2011) with
    `oversample` extra columns and K power iterations, seeded (identical on every rank); exact whenever the
    sketch would not be smaller than the matrix.
    """
    m, n = matrix.shape
    if k > min(m, n):
        raise ValueError(f"cannot take {k} singular triplets of a {m}×{n} matrix")
    x = matrix.detach().to(torch.promote_types(matrix.dtype, torch.float32))
    width = k + oversample
    if niter is None or width >= min(m, n):
        u, s, vh = torch.linalg.svd(x, full_matrices=False)
        return u[:, :k], s[:k], vh[:k].T
    gen = torch.Generator().manual_seed(int(seed))
    omega = torch.randn(n, width, generator=gen, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    y = torch.linalg.qr(x @ omega).Q
    for _ in range(niter):
        z = torch.linalg.qr(x.T @ y).Q
        y = torch.linalg.qr(x @ z).Q
    u_small, s, vh = torch.linalg.svd(y.T @ x, full_matrices=False)
    return (y @ u_small)[:, :k], s[:k], vh[:k].T


@torch.no_grad()
def pissa_init(model: nn.Module, niter: int | None = None, seed: int = 0) -> dict[str, nn.Module]:
    """PiSSA start (Meng et al. 2024) on every adapter layer, with a frozen offset instead of a base shift.

    Args:
        model: a model with injected adapters (either parametrization).
        niter: None for the exact SVD (PEFT "pissa"); K for PEFT's "pissa_niter_K" randomized SVD.
        seed: seed of the randomized SVD's sketch.
    Returns the adapter layers. `s · lora_B · lora_A` equals the top-r SVD part of W, the layer's
    `delta_weight()` is zero, and the model's outputs are unchanged.
    """
    layers = adapter_items(model, "pissa_init")
    for index, (_name, layer) in enumerate(layers.items()):
        if getattr(layer, "lora_magnitude", None) is not None:
            raise ValueError(
                "pissa_init: DoRA layers are not supported (PiSSA + DoRA is not a tested baseline)"
            )
        u, s, v = top_singular_triplets(
            layer.base_weight(), layer.rank, niter=niter, seed=seed * 7919 + index
        )
        root = torch.sqrt(s / layer.scaling)
        set_start(layer, root[:, None] * v.T, u * root, layer.scaling)
    return layers
