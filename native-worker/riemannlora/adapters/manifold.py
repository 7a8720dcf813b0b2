"""The RiemannLoRA adapter: a point of the fixed-rank manifold, trained in one backward.

Mathematics: docs/method.md §1–2.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ..geometry import orthonormal_basis
from .base import AdapterLayerBase

__all__ = ["ManifoldLoRALayer"]


class ManifoldLoRALayer(AdapterLayerBase):
    """Adapter ``X = A_L Bᵀ ∈ M_r`` (Bogachev et al., arXiv 2507.12142, docs/method.md §1–2).

    State (all in the geometry dtype: fp32, or fp64 for fp64 models, also when the model runs in bf16):

    - buffer ``A_L`` (out×r, orthonormal columns), Parameter ``B`` (in×r, carries the scale),
    - buffer ``B_R = qr(B).Q`` (in×r), recomputed by :meth:`set_point`,
    - Parameter ``Z1`` (out×r), identically zero between steps.

    The forward is the doubled-rank form ``y = base(x) + (x B_R) Z1ᵀ + (x B) A_Lᵀ − offset``: its value is
    ``(W + X − offset) x`` and one ordinary backward leaves ``Z1.grad = G B_R`` and ``B.grad = Gᵀ A_L``
    (``G = ∂L/∂W``), i.e. the Riemannian gradient up to the O(out·r²) projection ``(I − A_L A_Lᵀ)``.
    ``scaling`` is 1.0: the scale lives in the point.

    Without an explicit start (LOI, :meth:`load_factors`) the point is a random orthonormal ``A_L`` with
    tiny singular values ``init_scale`` (docs/method.md §5: ``B = 0`` is not a point of ``M_r``).
    """

    def __init__(
        self,
        base: nn.Module,
        rank: int,
        dropout: float = 0.0,
        dtype: torch.dtype | None = None,
        init_scale: float = 1e-6,
    ):
        super().__init__(base, rank, dropout=dropout, dtype=dtype)
        if not init_scale > 0:
            raise ValueError(f"init_scale must be > 0 (a point of M_r has rank r), got {init_scale}")
        self._scaling = 1.0
        self.init_scale = float(init_scale)
        kw = {"device": base.weight.device, "dtype": self.geometry_dtype}
        m, n, r = self.out_features, self.in_features, rank
        # Row-major (contiguous) from the start: a QR's Q factor is column-major, and set_point copies into
        # these buffers in place, so a column-major buffer would make every step's write-back (and every
        # bucket stack) a transposing copy, 20x slower than a plain one at 8192×64.
        self.register_buffer("A_L", orthonormal_basis(torch.randn(m, r, **kw)).contiguous())
        self.register_buffer("B_R", orthonormal_basis(torch.randn(n, r, **kw)).contiguous())
        self.B = nn.Parameter((self.B_R * self.init_scale).contiguous())
        self.point_version = 0
        self.Z1 = nn.Parameter(torch.zeros(m, r, **kw))
        self._register_params()

    # ------------------------------------------------------------------ the point
    @torch.no_grad()
    def set_point(self, A_L: Tensor, B: Tensor, B_R: Tensor | None = None) -> None:
        """Set ``X = A_L Bᵀ`` in place (the Parameter objects stay the same for the optimizer).

        ``A_L`` must have orthonormal columns. ``B_R`` defaults to ``qr(B).Q``; callers that already hold an
        orthonormal basis of ``range(B)`` (the retraction's ``V``) pass it to skip the QR.
        """
        m, n, r = self.out_features, self.in_features, self.rank
        if tuple(A_L.shape) != (m, r) or tuple(B.shape) != (n, r):
            raise ValueError(
                f"set_point expects A_L {m}×{r} and B {n}×{r}, got {tuple(A_L.shape)}, {tuple(B.shape)}"
            )
        self.A_L.copy_(A_L)
        self.B.copy_(B)
        self.B_R.copy_(orthonormal_basis(self.B) if B_R is None else B_R)
        # lets an optimizer notice that the point was moved by someone else (its stored momentum lives in
        # the tangent space of the point it last wrote)
        self.point_version += 1

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if any(prefix + name in state_dict for name in ("A_L", "B", "B_R")):
            # the point was replaced behind the optimizer's back, as by set_point (whether it is really
            # another point is decided by the optimizer, which compares it with the one it wrote)
            self.point_version += 1

    def _lowrank_pairs(self) -> list[tuple[Tensor, Tensor]]:
        return [(self.B_R, self.Z1), (self.B, self.A_L)]

    @torch.no_grad()
    def adapter_weight(self) -> Tensor:
        return self.A_L @ self.B.t()

    @torch.no_grad()
    def svd_factors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``X = U diag(S) Vᵀ`` from the factors (QR of B and an r×r SVD; never m×n)."""
        Q, T = torch.linalg.qr(self.B)  # B = Q T  ->  X = A_L Tᵀ Qᵀ
        U_c, S, V_cT = torch.linalg.svd(T.t())
        return self.A_L @ U_c, S, Q @ V_cT.t()

    # ------------------------------------------------------------------ PEFT interchange
    @torch.no_grad()
    def peft_factors(self) -> tuple[Tensor, Tensor, float, dict]:
        """Balanced factors ``lora_B = U Σ^½``, ``lora_A = Σ^½ Vᵀ``, ``lora_alpha = r'`` (docs/method.md §6).

        With a frozen offset ``B0 A0`` (k > 0) the delta ``X − B0 A0`` has rank ≤ r + k and is returned as
        ``[U Σ^½, −B0] · [Σ^½ Vᵀ; A0]`` (PEFT's rank-2r conversion), so it loads on the ORIGINAL base.
        """
        U, S, V = self.svd_factors()
        root = S.sqrt()
        lora_B = U * root
        lora_A = root[:, None] * V.t()
        if self.offset_rank:
            lora_B = torch.cat([lora_B, -self.offset_B], dim=1)
            lora_A = torch.cat([lora_A, self.offset_A], dim=0)
        return lora_A.clone(), lora_B.clone(), float(lora_A.shape[0]), {}

    @torch.no_grad()
    def load_factors(self, lora_A: Tensor, lora_B: Tensor, scaling: float) -> None:
        """Set the point so that ``delta_weight() = scaling · lora_B @ lora_A``; clears any offset.

        Factorization: ``lora_B = Q₁R₁``, ``lora_Aᵀ = Q₂R₂``, ``svd(scaling R₁R₂ᵀ) = U_c S V_cᵀ``. The result
        depends only on the product, never on how it is split (the ambiguity the manifold removes). It is
        computed in fp64; the numerical rank counts singular values above ``eps₆₄·max(m, n)·σ_max`` (the
        tolerance of ``torch.linalg.matrix_rank``). A product of numerical rank < r is padded with random
        orthogonal directions of tiny singular values (docs/method.md §5) and a warning; a product of
        rank > r is truncated (best rank-r) with a warning.
        """
        m, n, r = self.out_features, self.in_features, self.rank
        if lora_A.dim() != 2 or lora_B.dim() != 2 or lora_A.shape[0] != lora_B.shape[1]:
            raise ValueError(
                f"load_factors expects lora_A r'×in and lora_B out×r', got {tuple(lora_A.shape)}, "
                f"{tuple(lora_B.shape)}"
            )
        if lora_A.shape[1] != n or lora_B.shape[0] != m:
            raise ValueError(
                f"load_factors: lora_B @ lora_A is {lora_B.shape[0]}×{lora_A.shape[1]}, the layer is {m}×{n}"
            )
        # In fp64 whatever the geometry dtype, with numpy/torch matrix_rank's tolerance eps·max(m, n)·σ_max:
        # a genuine rank-r adapter with a small σ (1e-5 σ_max, say) is imported as rank r. A tolerance of
        # sqrt(eps) of fp32 (3.5e-4) used to treat such a σ as zero and replace its direction by a random one.
        kw = {"device": self.B.device, "dtype": self.geometry_dtype}
        f64 = {"device": self.B.device, "dtype": torch.float64}
        Q1, R1 = torch.linalg.qr(lora_B.to(**f64))
        Q2, R2 = torch.linalg.qr(lora_A.t().to(**f64))
        U_c, S, V_cT = torch.linalg.svd(float(scaling) * (R1 @ R2.t()))
        U, V = Q1 @ U_c, Q2 @ V_cT.t()
        tol = torch.finfo(torch.float64).eps * max(m, n) * (S[0] if S.numel() else S.new_zeros(()))
        if S.numel() > r and bool(S[r] > tol):
            warnings.warn(
                f"load_factors: the product has rank > {r}; keeping its best rank-{r} approximation "
                f"(discarded relative energy {float((S[r:] ** 2).sum() / (S**2).sum()):.3g}). Use a layer of "
                "rank >= the adapter's rank to keep it exactly.",
                stacklevel=2,
            )
        kept = int(((S > tol) & (S > 0)).sum().clamp(max=r))
        U, S, V = U[:, :kept], S[:kept], V[:, :kept]
        if kept < r:
            tiny = self.init_scale * (float(S[-1]) if kept else 1.0)
            warnings.warn(
                f"load_factors: the product has rank {kept} < {r}; padding with {r - kept} random "
                f"orthogonal directions of singular value {tiny:.3g} (a point of M_r must have rank r, "
                "docs/method.md §5)",
                stacklevel=2,
            )
            U = self._complete(U, m, f64)
            V = self._complete(V, n, f64)
            S = torch.cat([S, S.new_full((r - kept,), tiny)])
        self.clear_offset()
        U, V, S = U.to(**kw), V.to(**kw), S.to(**kw)
        self.set_point(U, V * S, B_R=V)

    def _complete(self, Q: Tensor, dim: int, kw: dict) -> Tensor:
        """Extend orthonormal columns ``Q`` (dim×k) to dim×r with random orthonormal columns."""
        extra = torch.randn(dim, self.rank - Q.shape[1], **kw)
        extra = extra - Q @ (Q.t() @ extra)
        full = orthonormal_basis(torch.cat([Q, extra], dim=1))
        return torch.cat([Q, full[:, Q.shape[1] :]], dim=1)
