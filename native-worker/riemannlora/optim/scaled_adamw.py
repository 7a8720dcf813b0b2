"""ScaledAdamW: AdamW on LoRA factors with the r×r Riemannian preconditioner of Zhang & Pilanci.

Reference: F. Zhang, M. Pilanci, "Riemannian Preconditioned LoRA for Fine-Tuning Foundation Models",
arXiv 2402.02347 (2024) ("scaled GD" / "RPrecAdamW"); PEFT ships the same rule as
`peft.optimizers.create_riemannian_optimizer` (damping `reg` 1e-2).

Before every AdamW step the factor gradients of each LoRA pair (`lora_A` r×in, `lora_B` out×r) are replaced by

    g_A <- (Bᵀ B + δ I)⁻¹ g_A,        g_B <- g_B (A Aᵀ + δ I)⁻¹,

computed in at least fp32 (fp64 stays fp64), then AdamW runs unchanged on the preconditioned gradients.
Like PEFT, the LoRA scaling `s` is left out of the metric (it only rescales δ). Other trainable parameters
(DoRA's magnitude, anything unfrozen by the user) get plain AdamW.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

Pair = tuple[nn.Parameter, nn.Parameter]


def lora_factor_pairs(model: nn.Module) -> list[Pair]:
    """The `(lora_A, lora_B)` Parameter pairs of every factor-parametrized adapter layer in `model`.

    Duck-typed on the `FactorLoRALayer` attribute names so that it also works on any module exposing 2-D
    Parameters `lora_A` (r×in) and `lora_B` (out×r). Manifold layers (which own `A_L`, `B`, `Z1`) are skipped.
    """
    pairs = []
    for module in model.modules():
        a = getattr(module, "lora_A", None)
        b = getattr(module, "lora_B", None)
        if isinstance(a, nn.Parameter) and isinstance(b, nn.Parameter) and a.ndim == 2 and b.ndim == 2:
            pairs.append((a, b))
    return pairs


def split_model_or_params(params_or_model, what: str) -> tuple[Iterable, list[Pair] | None]:
    """Accept a model (its trainable parameters, factor pairs discovered) or a torch-style params list."""
    if isinstance(params_or_model, nn.Module):
        pairs = lora_factor_pairs(params_or_model)
        if not pairs:
            raise ValueError(
                f"{what}: the model has no factor-parametrized LoRA layers (lora_A/lora_B). Inject "
                "adapters with inject_adapters(model, ..., parametrization='factors') first; Riemannian "
                "optimizers are for parametrization='manifold'."
            )
        trainable = [p for p in params_or_model.parameters() if p.requires_grad]
        return trainable, pairs
    return params_or_model, None


def _damped_solve_left(gram: torch.Tensor, rhs: torch.Tensor, reg: float) -> torch.Tensor:
    """(gram + reg·I)⁻¹ rhs for symmetric PSD r×r `gram` (batched …×r×r); Cholesky solve (SPD: reg > 0)."""
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    factor = torch.linalg.cholesky(gram + reg * eye)
    return torch.cholesky_solve(rhs, factor)


class ScaledAdamW(torch.optim.AdamW):
    """AdamW with the Zhang & Pilanci r×r preconditioner on each LoRA pair (RPrecAdamW, arXiv 2402.02347).

    Args:
        params: the model (its trainable parameters are optimized and its `lora_A`/`lora_B` pairs found
            automatically) or a torch-style iterable of parameters / parameter groups together with `pairs`.
        lr, betas, eps, weight_decay, amsgrad: as `torch.optim.AdamW` (weight decay is decoupled).
        reg: damping δ added to BᵀB and AAᵀ before solving (default 1e-2, as PEFT).
        pairs: explicit `(lora_A, lora_B)` pairs when `params` is not a model.

    The preconditioned gradients are swapped into `.grad` only for the duration of the AdamW update and the
    caller's gradients are restored afterwards, so gradient norms logged after `step()` are the raw ones.
    """

    def __init__(
        self,
        params,
        lr: float = 5e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        reg: float = 1e-2,
        pairs: list[Pair] | None = None,
        amsgrad: bool = False,
    ):
        if reg <= 0:
            raise ValueError(
                f"ScaledAdamW: reg must be > 0 (the damping keeps (BᵀB + reg·I) invertible), got {reg}"
            )
        params, found = split_model_or_params(params, "ScaledAdamW")
        pairs = found if pairs is None else list(pairs)
        if pairs is None:
            raise ValueError(
                "ScaledAdamW needs to know which parameters form LoRA pairs: pass the model itself, or "
                "pairs=[(lora_A, lora_B), ...] together with the parameter list."
            )
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        self.reg = float(reg)
        optimized = {id(p) for g in self.param_groups for p in g["params"]}
        for a, b in pairs:
            if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
                raise ValueError(
                    "ScaledAdamW: a pair must be lora_A (r×in) and lora_B (out×r); got shapes "
                    f"{tuple(a.shape)} and {tuple(b.shape)}"
                )
            if id(a) not in optimized and id(b) not in optimized:
                raise ValueError(
                    "ScaledAdamW: a LoRA pair given in `pairs` is not among the optimized parameters"
                )
        self.pairs = pairs

    @torch.no_grad()
    def preconditioned_grads(self) -> dict[int, torch.Tensor]:
        """The preconditioned gradient of every pair factor that has a gradient, keyed by `id(param)`."""
        out: dict[int, torch.Tensor] = {}
        # Same-shape pairs are stacked so that each bucket costs one batched Cholesky per side: at scale the
        # cost is the latency of hundreds of tiny solver calls, not their arithmetic.
        buckets: dict[tuple, list[Pair]] = {}
        for a, b in self.pairs:
            if a.grad is None and b.grad is None:
                continue
            key = (tuple(a.shape), tuple(b.shape), a.dtype, a.device, a.grad is not None, b.grad is not None)
            buckets.setdefault(key, []).append((a, b))
        for key, pairs in buckets.items():
            has_ga, has_gb = key[4], key[5]
            compute = torch.promote_types(key[2], torch.float32)
            a32 = torch.stack([a.detach() for a, _ in pairs]).to(compute)  # k×r×in
            b32 = torch.stack([b.detach() for _, b in pairs]).to(compute)  # k×out×r
            if has_ga:
                # g_A <- (BᵀB + δI)⁻¹ g_A   (r×r solve against an r×in right-hand side)
                ga = torch.stack([a.grad for a, _ in pairs]).to(compute)
                new = _damped_solve_left(b32.mT @ b32, ga, self.reg)
                for (a, _), g in zip(pairs, new.unbind(0), strict=True):
                    out[id(a)] = g.to(a.grad.dtype)
            if has_gb:
                # g_B <- g_B (AAᵀ + δI)⁻¹ = ((AAᵀ + δI)⁻¹ g_Bᵀ)ᵀ since AAᵀ + δI is symmetric
                gb = torch.stack([b.grad for _, b in pairs]).to(compute)
                new = _damped_solve_left(a32 @ a32.mT, gb.mT, self.reg).mT
                for (_, b), g in zip(pairs, new.unbind(0), strict=True):
                    out[id(b)] = g.to(b.grad.dtype)
        return out

    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        new = self.preconditioned_grads()
        by_id = {id(p): p for a, b in self.pairs for p in (a, b)}
        saved = {}
        for pid, g in new.items():
            p = by_id[pid]
            saved[pid] = p.grad
            p.grad = g
        try:
            super().step()
        finally:
            for pid, g in saved.items():
                by_id[pid].grad = g
        return loss
