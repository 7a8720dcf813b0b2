"""MuonFactors: Muon applied to each LoRA factor separately (the per-factor Muon baseline).

References: K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024),
https://kellerjordan.github.io/posts/muon/ ; J. Liu et al., "Muon is Scalable for LLM Training",
arXiv 2502.16982 (the `match_rms_adamw` learning-rate scaling); `torch.optim.Muon`.
Used as a baseline in Bogachev et al., arXiv 2507.12142 v2 ("per-factor Muon"): unlike Riemannion it is not
invariant to the LoRA reparametrization (A S, S⁻¹ B), because it orthogonalizes A and B independently.

Per 2-D parameter (each `lora_A` r×in and each `lora_B` out×r on its own), per step:

    buf <- μ·buf + (1 − μ)·g                        (EMA momentum, as torch.optim.Muon / Jordan's code)
    u   <- (1 − μ)·g + μ·buf   (Nesterov)  or  buf
    O   <- NewtonSchulz5(u)                         (≈ U Vᵀ of u; quintic a, b, c = 3.4445, −4.7750, 2.0315)
    p   <- (1 − lr·wd)·p − lr·k(shape)·O

Learning-rate scaling k(shape) for a rows×cols parameter (`adjust_lr`):
- "match_rms_adamw" (default): k = 0.2·√max(rows, cols) (Liu et al.), so the update's RMS is about 0.2 like
  AdamW's and the same learning-rate grid as AdamW applies. For LoRA factors this treats A and B alike.
- "original": k = √max(1, rows/cols) (Jordan's code and torch's default). With lora_B (out×r) this makes B's
  step √(out/r) times larger than A's.
- "none": k = 1.

Newton–Schulz runs in at least fp32 (fp64 stays fp64), not bf16 as in Jordan's GPU code: the factors are thin
(one side is r), so the iteration costs O(r²·(in + out)) and precision is free. Parameters that are not
matrices (DoRA's magnitude vector) are updated with AdamW using the group's lr, `adamw_betas`, `adamw_eps`
and the same decoupled weight decay, as is usual for Muon's non-matrix parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .scaled_adamw import split_model_or_params

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
_ADJUST = ("match_rms_adamw", "original", "none")


@torch.no_grad()
def newton_schulz5(
    g: torch.Tensor,
    steps: int = 5,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Quintic Newton–Schulz approximation of the polar factor U Vᵀ of a matrix `g` (Jordan et al. 2024).

    X ← X / max(‖X‖_F, eps); then `steps` times X ← a X + (b A + c A²) X with A = X Xᵀ, iterating on the wide
    orientation so that A is min(rows, cols)². Accepts a batch (…×rows×cols): same-shape factors go through
    one set of batched matmuls. Computed in at least fp32; returned in `g`'s dtype.
    """
    if g.ndim < 2:
        raise ValueError(f"newton_schulz5 expects a matrix (or a batch of them), got shape {tuple(g.shape)}")
    a, b, c = coefficients
    x = g.to(torch.promote_types(g.dtype, torch.float32))
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    x = x / torch.linalg.matrix_norm(x, keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    if tall:
        x = x.mT
    return x.to(g.dtype)


def muon_lr_scale(shape: torch.Size | tuple[int, ...], adjust_lr: str) -> float:
    """The shape-based learning-rate multiplier k(shape) of a rows×cols matrix (see the module docstring)."""
    rows, cols = shape[0], shape[1]
    if adjust_lr == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    if adjust_lr == "original":
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr == "none":
        return 1.0
    raise ValueError(f"adjust_lr must be one of {_ADJUST}, got {adjust_lr!r}")


class MuonFactors(torch.optim.Optimizer):
    """Muon on each LoRA factor separately (Jordan et al. 2024), AdamW on non-matrix parameters.

    Args:
        params: the model (its trainable parameters; factor-parametrized adapters required) or a torch-style
            iterable of parameters / parameter groups.
        lr: learning rate (default 5e-4, the per-factor Muon value of the paper, docs/method.md §8).
        momentum: μ (0.95). nesterov: Nesterov momentum (True).
        weight_decay: decoupled, p ← (1 − lr·wd) p.
        ns_steps, ns_coefficients, eps: the Newton–Schulz iteration (5 steps, 3.4445, −4.7750, 2.0315).
        adjust_lr: "match_rms_adamw" (default), "original" or "none"; see the module docstring.
        adamw_betas, adamw_eps: AdamW settings for parameters that are not matrices.
    """

    def __init__(
        self,
        params,
        lr: float = 5e-4,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        *,
        ns_steps: int = 5,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        adjust_lr: str = "match_rms_adamw",
        adamw_betas: tuple[float, float] = (0.9, 0.999),
        adamw_eps: float = 1e-8,
    ):
        if lr < 0:
            raise ValueError(f"MuonFactors: lr must be >= 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"MuonFactors: momentum must be in [0, 1), got {momentum}")
        if ns_steps < 1:
            raise ValueError(f"MuonFactors: ns_steps must be >= 1, got {ns_steps}")
        if adjust_lr not in _ADJUST:
            raise ValueError(f"MuonFactors: adjust_lr must be one of {_ADJUST}, got {adjust_lr!r}")
        params, _ = split_model_or_params(params, "MuonFactors")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            ns_steps=ns_steps,
            ns_coefficients=tuple(ns_coefficients),
            eps=eps,
            adjust_lr=adjust_lr,
            adamw_betas=tuple(adamw_betas),
            adamw_eps=adamw_eps,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
            buckets: dict[tuple, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if wd != 0:
                    p.mul_(1 - lr * wd)
                if p.ndim == 2:
                    buckets.setdefault((tuple(p.shape), p.dtype, p.device), []).append(p)
                else:
                    self._adamw_update(p, p.grad, self.state[p], group)
            # Same-shape factors (all q_proj lora_A's, ...) share one batched momentum update and one batched
            # Newton–Schulz: at scale the cost is kernel latency, not arithmetic.
            for params in buckets.values():
                for p in params:
                    if "momentum_buffer" not in self.state[p]:
                        self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                for p in params:
                    self.state[p]["momentum_buffer"].lerp_(p.grad, 1 - mu)
                g = torch.stack([p.grad for p in params])
                buf = torch.stack([self.state[p]["momentum_buffer"] for p in params])
                update = g.lerp(buf, mu) if group["nesterov"] else buf
                ortho = newton_schulz5(update, group["ns_steps"], group["ns_coefficients"], group["eps"])
                scale = -lr * muon_lr_scale(params[0].shape, group["adjust_lr"])
                for p, o in zip(params, ortho.unbind(0), strict=True):
                    p.add_(o, alpha=scale)
        return loss

    @staticmethod
    def _adamw_update(p: torch.Tensor, g: torch.Tensor, state: dict, group: dict) -> None:
        """Plain bias-corrected Adam update (weight decay already applied, decoupled)."""
        beta1, beta2 = group["adamw_betas"]
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float64)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = float(state["step"])
        state["exp_avg"].lerp_(g, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt_().add_(group["adamw_eps"])
        p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1 - beta1**t))
