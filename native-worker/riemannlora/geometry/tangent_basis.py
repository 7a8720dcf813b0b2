"""A tangent vector in small coordinates: ``ξ = Q_L C Q_Rᵀ`` (docs/method.md §3, used by the optimizers).

Every Riemannian step works inside ``span[A_L, Ȧ] × span[B_R, Ḃ]``: the polar factor of ξ, its
re-projection, the retracted point ``(1 − ηγ) X − η ξ̂`` and the transported momentum all lie there. One
QR per side therefore suffices for the whole step; everything else is 2r×2r algebra on the core ``C`` and
a few thin products with the bases.

Structured bases (the usual case, ``out ≥ 2r`` and ``in ≥ 2r``): the gauge ``A_Lᵀ Ȧ = 0`` gives
``Q_L = [A_L, Q_a]`` with ``Q_a R_a = qr(Ȧ)`` — a QR of an m×r instead of an m×2r matrix (4× fewer flops) —
and ``Ḃ = B_R c + Q_b R_b`` gives ``Q_R = [B_R, Q_b]``, so ``C = [[cᵀ, R_bᵀ], [R_a, 0]]``, ``A_L = Q_L E``,
``B_R = Q_R E`` with ``E = [I; 0]``. Both complements are re-orthogonalized once more against ``A_L`` /
``B_R`` ("twice is enough"). When a complement's Q factor is not orthogonal to ``A_L`` / ``B_R`` to
64 ulp (an ill-conditioned or rank-deficient Ȧ or Ḃ_⊥), that side is re-orthogonalized once more and
re-orthonormalized by CholeskyQR, the correction folded into the core. Layers with ``min(out, in) < 2r``,
batches where that repair fails (a complement lying mostly inside span(A_L)), and batches whose ``A_L`` or
``B_R`` has drifted from orthonormality by more than 64 ulp use plain QRs of ``[A_L, Ȧ]`` and ``[Ḃ, B_R]``
instead, which also re-orthonormalizes the point (docs/method.md §7: "re-orthonormalize A_L now and then").
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["TangentBasis"]


def _mT(x: Tensor) -> Tensor:
    return x.transpose(-2, -1)


def _addmm(C: Tensor, A: Tensor, B: Tensor, alpha: float = 1.0) -> Tensor:
    """``C + alpha · A @ B``, one BLAS call for 3-D (batched) operands: no extra pass over the output."""
    if C.dim() == A.dim() == B.dim() == 3:
        return torch.baddbmm(C, A, B, alpha=alpha)
    return C + alpha * (A @ B)


def _addmm_(C: Tensor, A: Tensor, B: Tensor, alpha: float = 1.0) -> Tensor:
    """``C += alpha · A @ B`` in place, for a ``C`` this module just made: the out-of-place form copies C
    into a new output first (an m×2r copy per side and step, 5% of the step at rank 64)."""
    if C.dim() == A.dim() == B.dim() == 3:
        return C.baddbmm_(A, B, alpha=alpha)
    return C.add_(A @ B, alpha=alpha)


def _reorthogonalize(
    P: Tensor, Q: Tensor, C: Tensor, eye: Tensor, tol: float
) -> tuple[Tensor, Tensor] | None:
    """``Q = Q' R' + P C`` with ``Q'`` orthonormal and ``⊥ P`` to ``tol``, or None where that fails.

    ``Q`` (…×m×r) is orthonormal, ``P`` (…×m×r) too, and ``C = Pᵀ Q`` (the check's product, reused). One
    projection ``Q − P C`` and a CholeskyQR of the result (its Gram matrix is ``I − CᵀC``: well
    conditioned unless Q lies largely inside span(P)); then the same 64-ulp check as the unrepaired basis,
    now also of ``Q'ᵀ Q' = I``, since CholeskyQR does not guarantee it. Costs three m×r·r×r products
    instead of a Householder QR of a matrix twice as wide.
    """
    Q_proj = _addmm(Q, P, C, alpha=-1.0)
    L, info = torch.linalg.cholesky_ex(_mT(Q_proj) @ Q_proj)
    R_fix = _mT(L)
    Q_new = torch.linalg.solve_triangular(R_fix, Q_proj, upper=True, left=False)
    worst = torch.stack(
        [
            info.abs().amax().to(Q.dtype),  # Cholesky failed: not positive definite
            (_mT(P) @ Q_new).abs().amax(),
            (_mT(Q_new) @ Q_new - eye).abs().amax(),
        ]
    ).tolist()  # a second host sync, on this (rarer) path only
    if worst[0] != 0 or not max(worst[1:]) <= tol:
        return None
    return Q_new, R_fix


class TangentBasis:
    """``ξ = Ȧ B_Rᵀ + A_L Ḃᵀ = Q_L C Q_Rᵀ`` for batched ``A_L`` (…×m×r), ``B_R`` (…×n×r), ``Ȧ``, ``Ḃ``.

    Attributes: ``core`` (…×kL×kR), ``a`` and ``b`` (coordinates of ``A_L`` in ``Q_L`` and of ``B_R`` in
    ``Q_R``), ``structured``. Methods :meth:`left` / :meth:`right` multiply by ``Q_L`` / ``Q_R`` without
    forming them in the structured case.
    """

    def __init__(self, A_L: Tensor, B_R: Tensor, A_dot: Tensor, B_dot: Tensor):
        m, r = A_L.shape[-2:]
        n = B_R.shape[-2]
        self.rank = r
        self.A_L, self.B_R = A_L, B_R
        self.structured = m >= 2 * r and n >= 2 * r and self._structured(A_L, B_R, A_dot, B_dot)
        if not self.structured:
            self.Q_L, T_L = torch.linalg.qr(torch.cat([A_L, A_dot], dim=-1))
            self.Q_R, T_R = torch.linalg.qr(torch.cat([B_dot, B_R], dim=-1))
            self.core = T_L @ _mT(T_R)
            self.a = _mT(self.Q_L) @ A_L
            self.b = _mT(self.Q_R) @ B_R

    def _structured(self, A_L: Tensor, B_R: Tensor, A_dot: Tensor, B_dot: Tensor) -> bool:
        """Build the structured bases; False when they cannot be made orthonormal (then: plain QRs).

        ``[A_L, Q_a]`` must be orthonormal: ``Q_a ⊥ A_L`` and A_L itself (its rounding drift would otherwise
        be inherited by every new ``A_L = [A_L, Q_a] U₂`` and add up over the steps; the plain-QR path
        starts from a fresh Householder basis and so resets it). Same on the right. A complement that is
        ill-conditioned (momentum at rank 64 with 32 tokens: cond 1e3–1e4) or rank deficient (a gradient
        of rank < r) gives a ``Q_a`` whose columns are orthonormal but not ⊥ A_L to 64 ulp; that side is
        repaired (:func:`_reorthogonalize`) instead of redoing both QRs at twice the width. A drifted point
        (``A_Lᵀ A_L ≠ I``) or a failed repair takes the plain QRs of ``[A_L, Ȧ]`` and ``[Ḃ, B_R]``.
        """
        r = self.rank
        A_perp = _addmm(A_dot, A_L, _mT(A_L) @ A_dot, alpha=-1.0)
        Q_a, R_a = torch.linalg.qr(A_perp)
        c = _mT(B_R) @ B_dot
        B_perp = _addmm(B_dot, B_R, c, alpha=-1.0)
        c2 = _mT(B_R) @ B_perp  # second pass: B_perp ⊥ B_R to working precision
        B_perp = _addmm_(B_perp, B_R, c2, alpha=-1.0)
        c = c + c2
        Q_b, R_b = torch.linalg.qr(B_perp)
        eye = torch.eye(r, dtype=A_L.dtype, device=A_L.device)
        tol = 64 * torch.finfo(A_L.dtype).eps
        C_a, C_b = _mT(A_L) @ Q_a, _mT(B_R) @ Q_b
        worst = torch.stack(
            [
                C_a.abs().amax(),
                C_b.abs().amax(),
                (_mT(A_L) @ A_L - eye).abs().amax(),
                (_mT(B_R) @ B_R - eye).abs().amax(),
            ]
        ).tolist()  # one host sync per bucket and step
        if max(worst[2:]) > tol:
            return False
        top_left = _mT(c)
        if worst[0] > tol:  # Ȧ_⊥ = Q_a R_a = Q'_a (R' R_a) + A_L (C_a R_a): the A_L part joins the top row
            repaired = _reorthogonalize(A_L, Q_a, C_a, eye, tol)
            if repaired is None:
                return False
            Q_a, R_fix = repaired
            top_left = top_left + C_a @ R_a
            R_a = R_fix @ R_a
        if worst[1] > tol:  # Ḃ = B_R c + Q_b R_b = B_R (c + C_b R_b) + Q'_b (R' R_b)
            repaired = _reorthogonalize(B_R, Q_b, C_b, eye, tol)
            if repaired is None:
                return False
            Q_b, R_fix = repaired
            top_left = top_left + _mT(C_b @ R_b)
            R_b = R_fix @ R_b
        self.Q_a, self.Q_b = Q_a, Q_b
        top = torch.cat([top_left, _mT(R_b)], dim=-1)
        bottom = torch.cat([R_a, torch.zeros_like(R_a)], dim=-1)
        self.core = torch.cat([top, bottom], dim=-2)
        E = torch.cat([eye, torch.zeros_like(eye)], dim=0).expand(*A_L.shape[:-2], 2 * r, r)
        self.a = self.b = E
        return True

    def left(self, X: Tensor) -> Tensor:
        """``Q_L X`` (X: …×kL×j)."""
        if self.structured:
            r = self.rank
            return _addmm_(self.A_L @ X[..., :r, :], self.Q_a, X[..., r:, :])
        return self.Q_L @ X

    def right(self, Y: Tensor) -> Tensor:
        """``Q_R Y`` (Y: …×kR×j)."""
        if self.structured:
            r = self.rank
            return _addmm_(self.B_R @ Y[..., :r, :], self.Q_b, Y[..., r:, :])
        return self.Q_R @ Y

    def coords_of_B(self, B: Tensor) -> Tensor:
        """``Q_Rᵀ B`` for the point's ``B`` (…×n×r), which lies in ``span(B_R) ⊂ span(Q_R)``."""
        if self.structured:  # Q_bᵀ B = 0 since Q_b ⊥ B_R and B = B_R (B_Rᵀ B)
            T_B = _mT(self.B_R) @ B
            return torch.cat([T_B, torch.zeros_like(T_B)], dim=-2)
        return _mT(self.Q_R) @ B
