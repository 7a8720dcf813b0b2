"""Riemannian SGD with heavy-ball momentum on the fixed-rank manifold (RiemannLoRA v1, docs/method.md §4)."""

from __future__ import annotations

import torch

from ._batching import Bucket, ManifoldOptimizerBase

__all__ = ["RiemannianSGD"]


def _mT(x):
    return x.transpose(-2, -1)


class RiemannianSGD(ManifoldOptimizerBase):
    """Riemannian heavy-ball SGD (Bogachev et al., arXiv 2507.12142 v1; docs/method.md §4).

    Per layer and step: ``Ȧ = β Ȧp + (1 − d)(I − A_L A_Lᵀ) gA``, ``Ḃ = β Ḃp + (1 − d) gB`` with the
    transported momentum ``(Ȧp, Ḃp)`` (ProjectLR of the stored ambient factors) and dampening ``d``
    (default ``d = β``: the paper's EMA form; ``dampening=0`` gives the undampened sum). As in
    ``torch.optim.SGD``, the first step (no stored momentum) takes the undampened gradient, and ``d`` has no
    effect when ``β = 0``: the run-config baseline ``sgd`` (torch SGD with ``dampening = momentum``) and
    this optimizer then step on the same learning-rate scale from the first step on. The momentum is
    stored raw (transported to the new point at the end of the step). Then retract
    ``(1 − ηγ) X − η ξ = [A_L, −η Ȧ][(1 − ηγ) B − η Ḃ, B_R]ᵀ`` (RetractionLR, in the coordinates of
    :class:`~riemannlora.geometry.TangentBasis`: one QR per side and one 2r×2r SVD).

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
        super().__init__(
            params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "dampening": d}
        )

    def _step_bucket(self, bk: Bucket) -> None:
        lr, beta, wd = bk.hyper("lr"), bk.hyper("momentum"), bk.hyper("weight_decay")
        momentum = self._momentum(bk)  # (resets the momentum of a layer whose point moved from outside)
        # torch.optim.SGD's convention, so that LoRA-SGD and this optimizer share learning-rate scales from
        # the first step on: a layer's first momentum buffer is its undampened gradient, and dampening
        # applies only with momentum ≠ 0 (docs/method.md §4).
        undamped = [
            "momentum_A" not in self.state.get(layer.B, {}) or float(group["momentum"]) == 0
            for layer, group in zip(bk.layers, bk.groups, strict=True)
        ]
        A_dot, B_dot = self._riemannian_grad(bk)
        if not all(undamped):
            keep = torch.tensor(
                [1.0 if u else 1 - float(g["dampening"]) for u, g in zip(undamped, bk.groups, strict=True)],
                dtype=bk.dtype,
                device=bk.B.device,
            ).view(-1, 1, 1)
            A_dot, B_dot = keep * A_dot, keep * B_dot
        if momentum is not None:
            A_dot = torch.addcmul(A_dot, beta, momentum[0])  # β·Ȧp + Ȧ in one pass
            B_dot = torch.addcmul(B_dot, beta, momentum[1])
        basis = bk.manifold.tangent_basis(bk.A_L, bk.B_R, A_dot, B_dot)
        direction = basis.core  # ξ = Q_L core Q_Rᵀ
        extra = {}
        if self.adam_like:
            # In coordinates the Ḃ part of ξ (A_L Ḃᵀ) is a aᵀ core and the Ȧ part (Ȧ B_Rᵀ) the rest;
            # Q_L, Q_R orthonormal and B_R, A_L too, so ‖Ȧ‖_F, ‖Ḃ‖_F are Frobenius norms of those blocks.
            part_B = basis.a @ (_mT(basis.a) @ basis.core)
            part_A = basis.core - part_B
            g = self.adam_gamma
            zeros = torch.zeros(bk.B.shape[0], dtype=bk.dtype, device=bk.B.device)
            S_A = self._stack_state(bk, "norm_A", ())
            S_B = self._stack_state(bk, "norm_B", ())
            steps = self._stack_state(bk, "step", ())
            S_A = g * torch.linalg.matrix_norm(part_A) + (1 - g) * (zeros if S_A is None else S_A)
            S_B = g * torch.linalg.matrix_norm(part_B) + (1 - g) * (zeros if S_B is None else S_B)
            correction = 1 - (1 - g) ** ((zeros if steps is None else steps) + 1)
            direction = part_A / (S_A / correction + self.adam_eps).view(-1, 1, 1) + part_B / (
                S_B / correction + self.adam_eps
            ).view(-1, 1, 1)
            extra = {"norm_A": S_A, "norm_B": S_B}
        self._retract_and_transport(bk, basis, -lr * direction, 1 - lr * wd, basis.core, extra)
