"""The fixed-rank matrix manifold M_r in factored form (docs/method.md §1–3; arXiv 2507.12142, §3).

A point is stored as ``X = A_L Bᵀ`` with ``A_L`` (m×r, orthonormal columns) and ``B`` (n×r, carries the
scale); ``B_R`` is an orthonormal basis of ``range(B)``. A tangent vector at X is
``ξ = Ȧ B_Rᵀ + A_L Ḃᵀ`` with the gauge ``A_Lᵀ Ȧ = 0``. Nothing here ever forms an m×n matrix except the
``*_dense`` helpers, which exist for tests.

Every function accepts any number of leading batch dimensions (``...×m×r``), so that all same-shape layers
of a model go through ONE batched ``torch.linalg.qr`` and ONE batched ``torch.linalg.svd`` call: for
LoRA-sized factors the cost of a step is the latency of the solver calls, not the arithmetic.

All functions run under ``torch.no_grad()``: differentiating through QR/SVD is both unnecessary and
unstable (NaN at repeated singular values, docs/method.md §7). Callers pass fp32 or fp64 tensors; see
:func:`geometry_dtype`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .tangent_basis import TangentBasis, _addmm

__all__ = [
    "FixedRankManifold",
    "geometry_dtype",
    "orthonormal_basis",
    "project_lr",
    "tangent_factors",
    "retract_lr",
    "ortho_lr",
    "ortho_weights",
    "ORTHO_RTOL",
    "point_dense",
    "tangent_dense",
]


def geometry_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype geometry runs in for a model (or factor) of ``dtype``: fp64 stays fp64, else fp32.

    torch has no bf16/fp16 QR or SVD kernels on CUDA and half precision is far too coarse for
    orthogonalization anyway (docs/method.md §7).
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def _mT(x: Tensor) -> Tensor:
    return x.transpose(-2, -1)


@torch.no_grad()
def orthonormal_basis(M: Tensor) -> Tensor:
    """Thin QR factor ``Q`` of ``M`` (…×n×k → …×n×k), batched."""
    return torch.linalg.qr(M, mode="reduced").Q


@torch.no_grad()
def project_lr(A_L: Tensor, B_R: Tensor, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
    """ProjectLR (docs/method.md §3): project the factored ambient ``Z = P Qᵀ`` onto ``T_X M_r``.

    ``A_L`` …×m×r and ``B_R`` …×n×r orthonormal; ``P`` …×m×k, ``Q`` …×n×k for any k. Returns the tangent
    coordinates ``(Ȧ, Ḃ)`` with ``Ȧ = (I − A_L A_Lᵀ) P (Qᵀ B_R)`` (gauge ``A_Lᵀ Ȧ = 0``) and
    ``Ḃ = Q (Pᵀ A_L)``. Cost O((m + n) k r); the ambient form is
    ``P_T(Z) = A_L A_Lᵀ Z + (I − A_L A_Lᵀ) Z B_R B_Rᵀ``.
    """
    PtA = _mT(P) @ A_L  # k×r
    P_perp = P - A_L @ _mT(PtA)  # (I − A_L A_Lᵀ) P, without forming the m×m projector
    A_dot = P_perp @ (_mT(Q) @ B_R)
    B_dot = Q @ PtA
    return A_dot, B_dot


def tangent_factors(A_L: Tensor, B_R: Tensor, A_dot: Tensor, B_dot: Tensor) -> tuple[Tensor, Tensor]:
    """Ambient factors of a tangent vector: ``ξ = [A_L, Ȧ] · [Ḃ, B_R]ᵀ`` (…×m×2r, …×n×2r).

    A_L comes first so that a QR of the left factor reproduces ±A_L in its first r columns.
    """
    return torch.cat([A_L, A_dot], dim=-1), torch.cat([B_dot, B_R], dim=-1)


@torch.no_grad()
def retract_lr(L: Tensor, R: Tensor, rank: int) -> tuple[Tensor, Tensor, Tensor]:
    """RetractionLR (docs/method.md §3): best rank-``rank`` approximation of ``L Rᵀ`` (…×m×k, …×n×k).

    Two thin QRs and one k×k SVD: ``L = Q_L T_L``, ``R = Q_R T_R``, ``svd(T_L T_Rᵀ) = U_c S V_cᵀ``.
    Returns ``(U, S, V)`` with ``U = Q_L U_c[:, :r]`` (…×m×r), ``S`` (…×r, descending),
    ``V = Q_R V_c[:, :r]`` (…×n×r); the new point is ``A_L = U``, ``B = V diag(S)``.
    """
    if rank > L.shape[-1]:
        raise ValueError(f"retract_lr: rank {rank} exceeds the factor width {L.shape[-1]}")
    Q_L, T_L = torch.linalg.qr(L, mode="reduced")
    Q_R, T_R = torch.linalg.qr(R, mode="reduced")
    U_c, S, V_cT = torch.linalg.svd(T_L @ _mT(T_R), full_matrices=False)
    U = Q_L @ U_c[..., :, :rank]
    V = Q_R @ _mT(V_cT)[..., :, :rank]
    return U, S[..., :rank], V


ORTHO_RTOL = 1e-3
"""OrthoLR's relative cutoff τ (see :func:`ortho_weights`); the same in every geometry dtype."""


def ortho_weights(s: Tensor, rtol: float = ORTHO_RTOL) -> Tensor:
    """The weight OrthoLR gives each core singular value ``s`` (…×k, descending): 1 above ``rtol·s_max``,
    0 below ``rtol·s_max/2``, linear in between (docs/method.md §3).

    The exact polar factor raises every nonzero singular value to 1; a tangent vector of rank < 2r has
    noise-level ones (its QR bases carry arbitrary extra columns), which must be zeroed, not raised. The
    threshold does not depend on the dtype (fp32 noise sits near 1e-7·s_max, fp64 noise near 1e-16·s_max:
    both far below ``rtol/2``), so fp32 and fp64 runs take the same steps up to rounding; the ramp makes
    the step a continuous function of ξ, so a singular value that crosses the threshold changes it by
    little. Muon's Newton–Schulz iteration likewise leaves directions far below its saturation level
    (about 2e-3 of ``‖ξ‖_F``) nearly untouched. ``rtol = 0`` keeps every singular value ``> 0``.
    """
    s_max = s[..., :1]
    if rtol == 0:
        return ((s > 0) & (s_max > 0)).to(s.dtype)
    ramp = (s / (0.5 * rtol * s_max) - 1).clamp(0, 1)  # 0 at rtol/2, 1 at rtol (relative to s_max)
    return torch.where(s_max > 0, ramp, torch.zeros_like(ramp))


@torch.no_grad()
def ortho_lr(
    A_L: Tensor, B_R: Tensor, A_dot: Tensor, B_dot: Tensor, rtol: float = ORTHO_RTOL
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """OrthoLR (docs/method.md §3): exact polar factor of a rank-≤2r tangent vector ``ξ = [A_L, Ȧ][Ḃ, B_R]ᵀ``.

    ``Q_L, T_L = qr([A_L, Ȧ])``, ``Q_R, T_R = qr([Ḃ, B_R])``, ``U_c, s, V_cᵀ = svd(T_L T_Rᵀ)``;
    ``Ortho(ξ) = (Q_L U_c D)(Q_R V_c)ᵀ`` with ``D = diag(ortho_weights(s, rtol))``: 1 for every singular
    value above ``rtol·s_max``; those at the noise level are zeroed, never raised to 1 (when ξ has rank
    < 2r the QR bases carry arbitrary extra columns). ξ = 0 gives 0.

    Returns the factors ``(P, Q)`` of ``Ortho(ξ) = P Qᵀ`` (…×m×2r, …×n×2r) and a dict with the QR bases
    ``Q_L``, ``Q_R`` (whose spans contain ``A_L`` and ``B_R``: the Riemannion step reuses them) and ``s``.
    """
    L, R = tangent_factors(A_L, B_R, A_dot, B_dot)
    Q_L, T_L = torch.linalg.qr(L, mode="reduced")
    Q_R, T_R = torch.linalg.qr(R, mode="reduced")
    U_c, s, V_cT = torch.linalg.svd(T_L @ _mT(T_R), full_matrices=False)
    U_c_kept = U_c * ortho_weights(s, rtol).unsqueeze(-2)
    P = Q_L @ U_c_kept
    Q = Q_R @ _mT(V_cT)
    return P, Q, {"Q_L": Q_L, "Q_R": Q_R, "U_c": U_c_kept, "V_c": _mT(V_cT), "s": s}


def point_dense(A_L: Tensor, B: Tensor) -> Tensor:
    """Dense ``X = A_L Bᵀ`` (…×m×n). For tests and analysis only."""
    return A_L @ _mT(B)


def tangent_dense(A_L: Tensor, B_R: Tensor, A_dot: Tensor, B_dot: Tensor) -> Tensor:
    """Dense ``ξ = Ȧ B_Rᵀ + A_L Ḃᵀ`` (…×m×n). For tests and analysis only."""
    return A_dot @ _mT(B_R) + A_L @ _mT(B_dot)


class FixedRankManifold:
    """``M_r`` of m×n matrices of rank r, in the geoopt style (``proj``, ``retr``, ``transp``, ``ortho``).

    Points are pairs ``(A_L, B)`` with ``X = A_L Bᵀ``; tangent vectors are pairs ``(Ȧ, Ḃ)`` at a point,
    interpreted with ``B_R = qr(B).Q``. All methods accept leading batch dimensions and return new tensors.
    Reference: Bogachev et al., arXiv 2507.12142 (RiemannLoRA), docs/method.md §1–3.
    """

    def __init__(self, m: int, n: int, rank: int):
        if not 0 < rank <= min(m, n):
            raise ValueError(f"FixedRankManifold: rank must be in [1, min(m, n)={min(m, n)}], got {rank}")
        self.m, self.n, self.rank = m, n, rank

    def __repr__(self) -> str:
        return f"FixedRankManifold(m={self.m}, n={self.n}, rank={self.rank})"

    @property
    def dim(self) -> int:
        """Manifold dimension ``(m + n − r) r``."""
        return (self.m + self.n - self.rank) * self.rank

    @staticmethod
    def b_basis(B: Tensor) -> Tensor:
        """``B_R = qr(B).Q``."""
        return orthonormal_basis(B)

    def proj(self, A_L: Tensor, B: Tensor, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        """Project the ambient ``P Qᵀ`` onto the tangent space at ``A_L Bᵀ`` (ProjectLR)."""
        return project_lr(A_L, self.b_basis(B), P, Q)

    def egrad2rgrad_dense(self, A_L: Tensor, B: Tensor, G: Tensor) -> tuple[Tensor, Tensor]:
        """Riemannian gradient ``P_T(G)`` of a dense ambient gradient (tests only)."""
        B_R = self.b_basis(B)
        A_dot = G @ B_R
        A_dot = A_dot - A_L @ (_mT(A_L) @ A_dot)
        return A_dot, _mT(G) @ A_L

    def retr(
        self, A_L: Tensor, B: Tensor, A_dot: Tensor, B_dot: Tensor, t: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """RetractionLR of ``X + t ξ`` = ``[t Ȧ, A_L][B_R, B + t Ḃ]ᵀ``; returns the new ``(A_L, B)``."""
        B_R = self.b_basis(B)
        L = torch.cat([A_L, t * A_dot], dim=-1)
        R = torch.cat([B + t * B_dot, B_R], dim=-1)
        U, S, V = retract_lr(L, R, self.rank)
        return U, V * S.unsqueeze(-2)

    def transp(
        self, A_L: Tensor, B: Tensor, new_A_L: Tensor, new_B: Tensor, A_dot: Tensor, B_dot: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Vector transport by projection: re-project ``ξ`` (at the old point) onto the new tangent space."""
        P, Q = tangent_factors(A_L, self.b_basis(B), A_dot, B_dot)
        return project_lr(new_A_L, self.b_basis(new_B), P, Q)

    def ortho(
        self, A_L: Tensor, B: Tensor, A_dot: Tensor, B_dot: Tensor, rtol: float = ORTHO_RTOL
    ) -> tuple[Tensor, Tensor]:
        """OrthoLR: ambient factors ``(P, Q)`` of the polar factor of ξ (not projected back)."""
        P, Q, _ = ortho_lr(A_L, self.b_basis(B), A_dot, B_dot, rtol)
        return P, Q

    def to_dense(self, A_L: Tensor, B: Tensor) -> Tensor:
        return point_dense(A_L, B)

    def tangent_to_dense(self, A_L: Tensor, B: Tensor, A_dot: Tensor, B_dot: Tensor) -> Tensor:
        return tangent_dense(A_L, self.b_basis(B), A_dot, B_dot)

    def random_point(
        self, *batch: int, dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """A random point with orthonormal ``A_L`` and singular values in [0.5, 1.5]."""
        A_L = orthonormal_basis(torch.randn(*batch, self.m, self.rank, dtype=dtype, generator=generator))
        V = orthonormal_basis(torch.randn(*batch, self.n, self.rank, dtype=dtype, generator=generator))
        s = 0.5 + torch.rand(*batch, 1, self.rank, dtype=dtype, generator=generator)
        return A_L, V * s

    # ------------------------------------------------------------------ the optimizers' coordinate form
    # Riemannion and RiemannianSGD step through these three (docs/method.md §3–4); the dense-reference tests
    # check them against proj / retr / transp above.

    @staticmethod
    def rgrad_from_probes(A_L: Tensor, grad_Z1: Tensor, grad_B: Tensor) -> tuple[Tensor, Tensor]:
        """Riemannian gradient ``(Ȧ, Ḃ)`` from the doubled-rank backward (docs/method.md §2).

        ``grad_Z1 = G B_R`` and ``grad_B = Gᵀ A_L`` come out of ONE ordinary backward; the tangent
        coordinates are ``Ȧ = (I − A_L A_Lᵀ) G B_R`` (the gauge) and ``Ḃ = Gᵀ A_L``, without forming G.
        """
        return _addmm(grad_Z1, A_L, _mT(A_L) @ grad_Z1, alpha=-1.0), grad_B

    @staticmethod
    def tangent_basis(A_L: Tensor, B_R: Tensor, A_dot: Tensor, B_dot: Tensor) -> TangentBasis:
        """``ξ = Ȧ B_Rᵀ + A_L Ḃᵀ = Q_L C Q_Rᵀ``, one QR per side for the whole step (``TangentBasis``)."""
        return TangentBasis(A_L, B_R, A_dot, B_dot)

    def retract_and_transport(
        self,
        basis: TangentBasis,
        B: Tensor,
        direction_core: Tensor,
        point_factor: Tensor | float,
        momentum_core: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """RetractionLR of ``point_factor · X + Q_L direction_core Q_Rᵀ`` and transport of the momentum
        ``Q_L momentum_core Q_Rᵀ`` to the new point, in the coordinates of ``basis`` (docs/method.md §3).

        ``X = A_L Bᵀ = Q_L a b_Bᵀ Q_Rᵀ``, so the retracted matrix is ``Q_L K Q_Rᵀ`` with the small core
        ``K = point_factor · a b_Bᵀ + direction_core``; ``svd(K) = U₂ S V₂ᵀ`` gives the best rank-r
        approximation ``A_L' = Q_L U₂[:, :r]``, ``B' = Q_R V₂[:, :r] diag(S[:r])``, ``B_R' = Q_R V₂[:, :r]``.
        Transport of ``ξ_m = Q_L M Q_Rᵀ`` (projection onto the new tangent space, ProjectLR):
        ``Ȧ' = Q_L (I − U₂U₂ᵀ) M V₂``, ``Ḃ' = Q_R Mᵀ U₂``. Returns ``(A_L', B', B_R', Ȧ', Ḃ')``.
        """
        r = self.rank
        K = direction_core
        if not (isinstance(point_factor, float) and point_factor == 0.0):
            K = point_factor * (basis.a @ _mT(basis.coords_of_B(B))) + K
        U2, S2, V2T = torch.linalg.svd(K, full_matrices=False)
        U2r, V2r = U2[..., :, :r], _mT(V2T)[..., :, :r]
        MV = momentum_core @ V2r
        x = MV - U2r @ (_mT(U2r) @ MV)
        y = _mT(momentum_core) @ U2r
        # one thin product per side for the new point and the transported momentum together
        left = basis.left(torch.cat([U2r, x], dim=-1))
        right = basis.right(torch.cat([V2r, y], dim=-1))
        A_new, mom_A = left[..., :r], left[..., r:]
        V, mom_B = right[..., :r], right[..., r:]
        return A_new, V * S2[..., None, :r], V, mom_A, mom_B
