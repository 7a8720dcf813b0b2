"""Riemannion: Muon on the fixed-rank manifold (Bogachev et al., arXiv 2507.12142 v2, method.md §4)."""

from __future__ import annotations

import torch

from ..geometry import default_ortho_eps
from ._batching import Bucket, ManifoldOptimizerBase

__all__ = ["Riemannion"]

MOMENTUM_STORES = ("raw", "orthogonalized")
RETRACTIONS = ("contains-point", "paper-printed")


def _mT(x):
    return x.transpose(-2, -1)


class Riemannion(ManifoldOptimizerBase):
    """Riemannion (LoRA meets Riemannion, ICLR 2026; method.md §4) for :class:`ManifoldLoRALayer` adapters.

    Per layer and step, with learning rate η, momentum β and decoupled weight decay γ:

    1. read ``gA = Z1.grad = G B_R`` and ``gB = B.grad = Gᵀ A_L`` (one backward, method.md §2);
    2. transport the old momentum (ambient factors m×2r, n×2r) by ProjectLR → ``(Ȧp, Ḃp)``;
    3. heavy ball without dampening: ``Ȧ = β Ȧp + (I − A_L A_Lᵀ) gA``, ``Ḃ = β Ḃp + gB``;
    4. ``ξ̂ = P_T(Ortho(ξ))``: OrthoLR (exact polar factor, singular values below ``ortho_eps·s_max``
       zeroed), then ProjectLR back onto ``T_X``;
    5. retract ``(1 − ηγ) X − η ξ̂ = [A_L, −η Ȧ̂] · [(1 − ηγ) B − η Ḃ̂, B_R]ᵀ`` (RetractionLR); the new
       point is ``A_L = U``, ``B = V diag(Σ)``, ``B_R = V``.

    Decisions where the printed algorithms disagree (method.md §4):

    - ``retraction="contains-point"`` (default): the retracted matrix contains the current ``X`` as above.
      The printed retraction line omits the current ``B`` — a typo: the step would then not contain X and
      the new point would be the best rank-r approximation of ``−η ξ̂`` alone. ``"paper-printed"``
      reproduces that line literally, for reproduction studies only (weight decay has no effect there).
    - ``momentum_store="raw"`` (default): the stored momentum is the raw heavy-ball sum of step 3 (Eq. 10).
      ``"orthogonalized"`` stores the projected polar factor ``ξ̂`` of step 4 instead (Alg. 4 as printed).

    Implementation: the OrthoLR QR bases ``Q_L ⊇ span[A_L, Ȧ]`` and ``Q_R ⊇ span[Ḃ, B_R]`` also contain
    everything the retraction needs (``Ȧ̂``, ``A_L`` and ``Ḃ̂``, ``B``), so step 5 reuses them: per layer the
    step costs two thin QRs (m×2r, n×2r), two 2r×2r SVDs and a few (m + n)·r² products, and A_L comes
    fresh out of a QR every step (no orthogonality drift). Same-shape layers are stacked and go through
    one batched call per building block. Geometry runs in the dtype of the factors (fp32; fp64 for fp64
    models) under ``no_grad``.

    Global-norm gradient clipping before :meth:`step` (``clip_grad_norm_`` over the layers' ``Z1`` and ``B``)
    only rescales the gradient, which the orthogonalization removes except through the momentum mix.

    Args:
        params: the model (all manifold layers), layers, their parameters, or param-group dicts.
        lr: learning rate η (paper: 1e-4 for Llama-3-8B). momentum: β (0.9). weight_decay: γ (decoupled).
        momentum_store / retraction: see above. ortho_eps: relative OrthoLR cutoff
            (default ``sqrt(machine eps)`` of the geometry dtype).
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
        ortho_eps: float | None = None,
    ):
        if momentum_store not in MOMENTUM_STORES:
            raise ValueError(f"momentum_store must be one of {MOMENTUM_STORES}, got {momentum_store!r}")
        if retraction not in RETRACTIONS:
            raise ValueError(f"retraction must be one of {RETRACTIONS}, got {retraction!r}")
        if ortho_eps is not None and not 0 <= ortho_eps < 1:
            raise ValueError(f"ortho_eps must be in [0, 1), got {ortho_eps}")
        self.momentum_store = momentum_store
        self.retraction = retraction
        self.ortho_eps = ortho_eps
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def _step_bucket(self, bk: Bucket) -> None:
        A, B, B_R, r = bk.A_L, bk.B, bk.B_R, bk.rank
        lr, beta, wd = bk.hyper("lr"), bk.hyper("momentum"), bk.hyper("weight_decay")

        # 1–3. Riemannian gradient, transported momentum, heavy ball without dampening.
        gA = bk.grad_A - A @ (_mT(A) @ bk.grad_A)
        A_dot, B_dot = gA, bk.grad_B
        moved = self._transported_momentum(bk)
        if moved is not None:
            A_dot = beta * moved[0] + A_dot
            B_dot = beta * moved[1] + B_dot

        # 4. OrthoLR: qr([A_L, Ȧ]) and qr([Ḃ, B_R]) hold ξ = [A_L, Ȧ][Ḃ, B_R]ᵀ = Q_L (T_L T_Rᵀ) Q_Rᵀ.
        L = torch.cat([A, A_dot], dim=-1)
        R = torch.cat([B_dot, B_R], dim=-1)
        Q_L, T_L = torch.linalg.qr(L)
        Q_R, T_R = torch.linalg.qr(R)
        U_c, s, V_cT = torch.linalg.svd(T_L @ _mT(T_R))
        eps = default_ortho_eps(bk.dtype) if self.ortho_eps is None else self.ortho_eps
        keep = ((s > eps * s[..., :1]) & (s[..., :1] > 0)).to(s.dtype)
        U_k = U_c * keep.unsqueeze(-2)  # Ortho(ξ) = Q_L U_k V_cᵀ Q_Rᵀ
        # ProjectLR of Ortho(ξ) in Q-coordinates: A_L = Q_L a, B_R = Q_R b_R (exact: both lie in the spans).
        a = _mT(Q_L) @ A
        b_R = _mT(Q_R) @ B_R
        PtA = _mT(U_k) @ a  # (Q_L U_k)ᵀ A_L
        ah = (U_k - a @ _mT(PtA)) @ (V_cT @ b_R)  # Ȧ̂ = Q_L ah
        bh = _mT(V_cT) @ PtA  # Ḃ̂ = Q_R bh

        # 5. Retraction of [A_L, −η Ȧ̂][(1 − ηγ) B − η Ḃ̂, B_R]ᵀ, all inside span(Q_L) × span(Q_R).
        if self.retraction == "contains-point":
            b_B = _mT(Q_R) @ B
            right = (1 - lr * wd) * b_B - lr * bh
        else:  # the printed line: −η ξ̂ only (see the class docstring)
            right = -lr * bh
        core = torch.cat([a, -lr * ah], dim=-1) @ _mT(torch.cat([right, b_R], dim=-1))
        U2, S2, V2T = torch.linalg.svd(core)
        U = Q_L @ U2[..., :, :r]
        V = Q_R @ _mT(V2T)[..., :, :r]
        bk.write_point(U, V * S2[..., None, :r], V)

        if self.momentum_store == "raw":
            self._save_state(bk, momentum_L=L, momentum_R=R)
        else:
            self._save_state(
                bk, momentum_L=torch.cat([A, Q_L @ ah], dim=-1), momentum_R=torch.cat([Q_R @ bh, B_R], dim=-1)
            )
