"""Riemannian SGD with heavy-ball momentum on the fixed-rank manifold (RiemannLoRA v1, method.md §4)."""

from __future__ import annotations

import torch

from ..geometry import retract_lr
from ._batching import Bucket, ManifoldOptimizerBase

__all__ = ["RiemannianSGD"]


def _mT(x):
    return x.transpose(-2, -1)


class RiemannianSGD(ManifoldOptimizerBase):
    """Riemannian heavy-ball SGD (Bogachev et al., arXiv 2507.12142 v1; method.md §4).

    Per layer and step: ``Ȧ = β Ȧp + (1 − d)(I − A_L A_Lᵀ) gA``, ``Ḃ = β Ḃp + (1 − d) gB`` with the
    transported momentum ``(Ȧp, Ḃp)`` (ProjectLR of the stored ambient factors) and dampening ``d``
    (default ``d = β``: the paper's EMA form; ``dampening=0`` gives the undampened sum). The momentum is
    stored raw. Then retract ``(1 − ηγ) X − η ξ = [A_L, −η Ȧ][(1 − ηγ) B − η Ḃ, B_R]ᵀ`` (RetractionLR).

    ``adam_like=True`` (v1 "Adam-like"): keep scalar EMAs of the component norms per layer,
    ``S_A ← γ‖Ȧ‖_F + (1 − γ) S_A``, ``S_B ← γ‖Ḃ‖_F + (1 − γ) S_B`` (γ = ``adam_gamma``, started at 0 and
    bias-corrected like Adam's moments, so the first step is not inflated by 1/γ), and step along
    ``(Ȧ / (S_A + adam_eps), Ḃ / (S_B + adam_eps))``.

    Same-shape layers are batched (one QR/SVD call per bucket); state_dict, param groups (lr, momentum,
    weight_decay, dampening) and LR schedulers work as for any ``torch.optim.Optimizer``.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        *,
        dampening: float | None = None,
        adam_like: bool = False,
        adam_gamma: float = 0.01,
        adam_eps: float = 1e-8,
    ):
        if not 0 < adam_gamma <= 1:
            raise ValueError(f"adam_gamma must be in (0, 1], got {adam_gamma}")
        d = momentum if dampening is None else dampening
        if not 0 <= d <= 1:
            raise ValueError(f"dampening must be in [0, 1], got {dampening}")
        self.adam_like = bool(adam_like)
        self.adam_gamma = float(adam_gamma)
        self.adam_eps = float(adam_eps)
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "dampening": d})

    def _step_bucket(self, bk: Bucket) -> None:
        A, B, B_R, r = bk.A_L, bk.B, bk.B_R, bk.rank
        lr, beta, wd, damp = bk.hyper("lr"), bk.hyper("momentum"), bk.hyper("weight_decay"), bk.hyper("dampening")

        gA = bk.grad_A - A @ (_mT(A) @ bk.grad_A)
        A_dot, B_dot = (1 - damp) * gA, (1 - damp) * bk.grad_B
        moved = self._transported_momentum(bk)
        if moved is not None:
            A_dot = beta * moved[0] + A_dot
            B_dot = beta * moved[1] + B_dot
        extra = {}
        dir_A, dir_B = A_dot, B_dot
        if self.adam_like:
            b = A.shape[0]
            g = self.adam_gamma
            S_A = self._stack_state(bk, "norm_A", ())
            S_B = self._stack_state(bk, "norm_B", ())
            steps = self._stack_state(bk, "step", ())
            S_A = torch.zeros(b, dtype=bk.dtype) if S_A is None else S_A
            S_B = torch.zeros(b, dtype=bk.dtype) if S_B is None else S_B
            t = (torch.zeros(b, dtype=bk.dtype) if steps is None else steps) + 1
            S_A = g * torch.linalg.matrix_norm(A_dot) + (1 - g) * S_A
            S_B = g * torch.linalg.matrix_norm(B_dot) + (1 - g) * S_B
            correction = 1 - (1 - g) ** t
            dir_A = A_dot / (S_A / correction + self.adam_eps).view(-1, 1, 1)
            dir_B = B_dot / (S_B / correction + self.adam_eps).view(-1, 1, 1)
            extra = {"norm_A": S_A, "norm_B": S_B}

        L = torch.cat([A, -lr * dir_A], dim=-1)
        R = torch.cat([(1 - lr * wd) * B - lr * dir_B, B_R], dim=-1)
        U, S, V = retract_lr(L, R, r)
        bk.write_point(U, V * S.unsqueeze(-2), V)
        self._save_state(bk, momentum_L=torch.cat([A, A_dot], dim=-1), momentum_R=torch.cat([B_dot, B_R], dim=-1),
                         **extra)
