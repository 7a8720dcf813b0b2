"""Riemannion: Muon on the fixed-rank manifold (Bogachev et al., arXiv 2507.12142 v2, docs/method.md §4)."""

from __future__ import annotations

import torch

from ..geometry import ORTHO_RTOL, ortho_weights
from ._batching import Bucket, ManifoldOptimizerBase

__all__ = ["Riemannion"]

MOMENTUM_STORES = ("raw", "orthogonalized")
RETRACTIONS = ("contains-point", "paper-printed")


def _mT(x):
    return x.transpose(-2, -1)


class Riemannion(ManifoldOptimizerBase):
    """Riemannion (LoRA meets Riemannion, ICLR 2026; docs/method.md §4) for :class:`ManifoldLoRALayer`.

    Per layer and step, with learning rate η, momentum β and decoupled weight decay γ:

    1. read ``gA = Z1.grad = G B_R`` and ``gB = B.grad = Gᵀ A_L`` (one backward, docs/method.md §2);
    2. transport the old momentum (ambient factors m×2r, n×2r) by ProjectLR → ``(Ȧp, Ḃp)``;
    3. heavy ball without dampening: ``Ȧ = β Ȧp + (I − A_L A_Lᵀ) gA``, ``Ḃ = β Ḃp + gB``;
    4. ``ξ̂ = P_T(Ortho(ξ))``: OrthoLR (polar factor: singular values above ``ortho_rtol·s_max`` raised
       to 1, those below half of it zeroed, linear in between; :func:`~riemannlora.geometry.ortho_weights`),
       then ProjectLR back onto ``T_X``;
    5. retract ``(1 − ηγ) X − η ξ̂ = [A_L, −η Ȧ̂] · [(1 − ηγ) B − η Ḃ̂, B_R]ᵀ`` (RetractionLR); the new
       point is ``A_L = U``, ``B = V diag(Σ)``, ``B_R = V``.

    Decisions where the printed algorithms disagree (docs/method.md §4):

    - ``retraction="contains-point"`` (default): the retracted matrix contains the current ``X`` as above.
      The printed retraction line omits the current ``B`` — a typo: the step would then not contain X and
      the new point would be the best rank-r approximation of ``−η ξ̂`` alone. ``"paper-printed"``
      reproduces that line literally, for reproduction studies only; it has no point to decay, so it
      refuses ``weight_decay > 0``.
    - ``momentum_store="raw"`` (default): the stored momentum is the raw heavy-ball sum of step 3 (Eq. 10).
      ``"orthogonalized"`` stores the projected polar factor ``ξ̂`` of step 4 instead (Alg. 4 as printed).

    Implementation (:class:`~riemannlora.geometry.TangentBasis`): the OrthoLR bases
    ``Q_L ⊇ span[A_L, Ȧ]`` and ``Q_R ⊇ span[Ḃ, B_R]`` also contain ``Ȧ̂``, ``Ḃ̂``, the point X and the new
    point, so the whole step is 2r×2r algebra plus thin products: per layer two thin QRs (of the gauge
    complements, m×r and n×r), two 2r×2r SVDs and a few (m + n)·r² products. The momentum is transported
    (projected onto the new tangent space) at the end of the step, in coordinates, and stored as
    ``(Ȧ, Ḃ)`` at the new point (out×r + in×r per layer). A_L comes fresh out of the retraction every
    step (no orthogonality drift). Same-shape layers are stacked and go through one batched call per
    building block. Geometry runs in the dtype of the factors (fp32; fp64 for fp64 models) under
    ``no_grad``.

    Global-norm gradient clipping before :meth:`step` (``clip_grad_norm_`` over the layers' ``Z1`` and ``B``)
    only rescales the gradient, which the orthogonalization removes except through the momentum mix.

    Args:
        params: the model (all manifold layers), layers, their parameters, or param-group dicts.
        lr: learning rate η (paper: 1e-4 for Llama-3-8B). momentum: β (0.9). weight_decay: γ (decoupled).
        momentum_store / retraction: see above. ortho_rtol: relative OrthoLR cutoff τ (default
            ``ORTHO_RTOL`` = 1e-3, the same in every geometry dtype).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-4,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        *,
        momentum_store: str = "raw",
        retraction: str = "contains-point",
        ortho_rtol: float = ORTHO_RTOL,
    ):
        if momentum_store not in MOMENTUM_STORES:
            raise ValueError(f"momentum_store must be one of {MOMENTUM_STORES}, got {momentum_store!r}")
        if retraction not in RETRACTIONS:
            raise ValueError(f"retraction must be one of {RETRACTIONS}, got {retraction!r}")
        if not 0 <= ortho_rtol < 1:
            raise ValueError(f"ortho_rtol must be in [0, 1), got {ortho_rtol}")
        self.momentum_store = momentum_store
        self.retraction = retraction
        self.ortho_rtol = float(ortho_rtol)
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        self._check_printed_retraction()

    def _check_printed_retraction(self) -> None:
        # The printed line retracts −η ξ̂ alone: there is no (1 − ηγ) X for a weight decay to shrink, so a
        # decay would be silently ignored. Refuse it instead (also for groups edited after construction).
        if self.retraction != "paper-printed":
            return
        for group in self.param_groups:
            if float(group["weight_decay"]) != 0:
                raise ValueError(
                    "Riemannion: weight_decay must be 0 with retraction='paper-printed' (the printed line "
                    "retracts -lr * xi_hat without the current point, so there is nothing to decay); got "
                    f"{group['weight_decay']}. Use retraction='contains-point' to train with weight decay"
                )

    def step(self, closure=None):
        self._check_printed_retraction()
        return super().step(closure)

    def _step_bucket(self, bk: Bucket) -> None:
        lr, beta, wd = bk.hyper("lr"), bk.hyper("momentum"), bk.hyper("weight_decay")

        # 1–3. Riemannian gradient plus the (already transported) momentum: heavy ball without dampening.
        A_dot, B_dot = self._riemannian_grad(bk)
        momentum = self._momentum(bk)
        if momentum is not None:
            A_dot = torch.addcmul(A_dot, beta, momentum[0])  # β·Ȧp + Ȧ in one pass
            B_dot = torch.addcmul(B_dot, beta, momentum[1])

        # 4. OrthoLR in coordinates: ξ = Q_L C Q_Rᵀ, svd(C) = U_c s V_cᵀ, Ortho(ξ) = Q_L U_k V_cᵀ Q_Rᵀ with
        # U_k = U_c diag(ortho_weights(s)) (noise-level singular values dropped); then ProjectLR back onto
        # T_X, still in coordinates (A_L = Q_L a, B_R = Q_R b):
        #   Ȧ̂ = Q_L (I − a aᵀ) U_k V_cᵀ b,  Ḃ̂ = Q_R V_c U_kᵀ a.
        basis = bk.manifold.tangent_basis(bk.A_L, bk.B_R, A_dot, B_dot)
        U_c, s, V_cT = torch.linalg.svd(basis.core, full_matrices=False)
        U_k = U_c * ortho_weights(s, self.ortho_rtol).unsqueeze(-2)
        a, b = basis.a, basis.b
        PtA = _mT(U_k) @ a
        ah = (U_k - a @ _mT(PtA)) @ (V_cT @ b)
        bh = _mT(V_cT) @ PtA
        xi_hat = ah @ _mT(b) + a @ _mT(bh)  # ξ̂ = Q_L xi_hat Q_Rᵀ

        # 5. Retract (1 − ηγ) X − η ξ̂ (or −η ξ̂ alone for the printed line); store and transport momentum.
        point_factor = 1 - lr * wd if self.retraction == "contains-point" else 0.0
        momentum_core = basis.core if self.momentum_store == "raw" else xi_hat
        self._retract_and_transport(bk, basis, -lr * xi_hat, point_factor, momentum_core)
