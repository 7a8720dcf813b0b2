"""Fixed-rank geometry against dense float64 references (docs/method.md §1–3), several seeds."""

from __future__ import annotations

import pytest
import torch

from riemannlora.adapters import inject_adapters
from riemannlora.geometry import (
    FixedRankManifold,
    TangentBasis,
    ortho_lr,
    orthonormal_basis,
    point_dense,
    project_lr,
    retract_lr,
    tangent_dense,
    tangent_factors,
)

M, N, R = 30, 20, 3
SEEDS = [0, 1, 2, 3]
F64 = torch.float64


def dense_proj(A_L, B_R, Z):
    """P_T(Z) = A_L A_Lᵀ Z + (I − A_L A_Lᵀ) Z B_R B_Rᵀ."""
    P = A_L @ A_L.mT
    return P @ Z + (Z - P @ Z) @ B_R @ B_R.mT


def truncated_svd(Z, r):
    U, S, Vh = torch.linalg.svd(Z, full_matrices=False)
    return U[:, :r] @ torch.diag(S[:r]) @ Vh[:r]


def setup(seed, batch=()):
    g = torch.Generator().manual_seed(seed)
    man = FixedRankManifold(M, N, R)
    A_L, B = man.random_point(*batch, generator=g)
    P = torch.randn(*batch, M, 5, dtype=F64, generator=g)
    Q = torch.randn(*batch, N, 5, dtype=F64, generator=g)
    return man, A_L, B, orthonormal_basis(B), P, Q


@pytest.mark.parametrize("seed", SEEDS)
def test_projection_matches_dense_is_idempotent_and_satisfies_gauge(seed):
    man, A_L, B, B_R, P, Q = setup(seed)
    A_dot, B_dot = project_lr(A_L, B_R, P, Q)
    xi = tangent_dense(A_L, B_R, A_dot, B_dot)
    torch.testing.assert_close(xi, dense_proj(A_L, B_R, P @ Q.mT), rtol=0, atol=1e-12)
    assert (A_L.mT @ A_dot).abs().max() < 1e-13  # gauge A_Lᵀ Ȧ = 0
    again = project_lr(A_L, B_R, *tangent_factors(A_L, B_R, A_dot, B_dot))
    torch.testing.assert_close(again[0], A_dot, rtol=0, atol=1e-12)
    torch.testing.assert_close(again[1], B_dot, rtol=0, atol=1e-12)
    # Z − P_T(Z) is normal: orthogonal to every tangent vector
    g = torch.Generator().manual_seed(100 + seed)
    eta = tangent_dense(
        A_L,
        B_R,
        *project_lr(
            A_L, B_R, torch.randn(M, 4, dtype=F64, generator=g), torch.randn(N, 4, dtype=F64, generator=g)
        ),
    )
    assert abs(float(((P @ Q.mT - xi) * eta).sum())) < 1e-11


@pytest.mark.parametrize("seed", SEEDS)
def test_retraction_is_truncated_svd_of_x_plus_xi(seed):
    man, A_L, B, B_R, P, Q = setup(seed)
    A_dot, B_dot = project_lr(A_L, B_R, P, Q)
    for t in (1e-3, 0.3, 2.0):
        A_new, B_new = man.retr(A_L, B, A_dot, B_dot, t=t)
        ref = truncated_svd(A_L @ B.mT + t * tangent_dense(A_L, B_R, A_dot, B_dot), R)
        torch.testing.assert_close(A_new @ B_new.mT, ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(A_new.mT @ A_new, torch.eye(R, dtype=F64), rtol=0, atol=1e-13)
    # generic factored retraction L Rᵀ (k = 2r) -> best rank r
    U, S, V = retract_lr(P, Q, R)
    torch.testing.assert_close(U @ torch.diag(S) @ V.mT, truncated_svd(P @ Q.mT, R), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_transport_lands_in_new_tangent_space(seed):
    man, A_L, B, B_R, P, Q = setup(seed)
    A_dot, B_dot = project_lr(A_L, B_R, P, Q)
    A_new, B_new = man.retr(A_L, B, A_dot, B_dot, t=0.5)
    B_R_new = orthonormal_basis(B_new)
    T_A, T_B = man.transp(A_L, B, A_new, B_new, A_dot, B_dot)
    moved = tangent_dense(A_new, B_R_new, T_A, T_B)
    torch.testing.assert_close(dense_proj(A_new, B_R_new, moved), moved, rtol=0, atol=1e-12)
    assert (A_new.mT @ T_A).abs().max() < 1e-13
    old = tangent_dense(A_L, B_R, A_dot, B_dot)
    torch.testing.assert_close(moved, dense_proj(A_new, B_R_new, old), rtol=0, atol=1e-12)
    # the old vector is NOT in the new tangent space (otherwise the test above proves nothing)
    assert (dense_proj(A_new, B_R_new, old) - old).abs().max() > 1e-3


def dense_polar(Z, rtol=1e-3):
    """Polar factor with OrthoLR's cutoff (docs/method.md §3): weight 1 above rtol·s_max, 0 below half."""
    U, S, Vh = torch.linalg.svd(Z, full_matrices=False)
    w = (S / (0.5 * rtol * S[0]) - 1).clamp(0, 1)
    return (U * w) @ Vh


@pytest.mark.parametrize("seed", SEEDS)
def test_ortho_has_unit_singular_values_and_is_the_polar_factor(seed):
    man, A_L, B, B_R, P, Q = setup(seed)
    A_dot, B_dot = project_lr(A_L, B_R, P, Q)
    Po, Qo, info = ortho_lr(A_L, B_R, A_dot, B_dot)
    O = Po @ Qo.mT
    s = torch.linalg.svdvals(O)
    torch.testing.assert_close(s[: 2 * R], torch.ones(2 * R, dtype=F64), rtol=0, atol=1e-12)
    assert s[2 * R :].abs().max() < 1e-12
    torch.testing.assert_close(O, dense_polar(tangent_dense(A_L, B_R, A_dot, B_dot)), rtol=0, atol=1e-11)
    torch.testing.assert_close(man.ortho(A_L, B, A_dot, B_dot)[0] @ Qo.mT, O, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_ortho_rank_deficient_zeroes_missing_directions(seed):
    _, A_L, B, B_R, P, Q = setup(seed)
    g = torch.Generator().manual_seed(seed)
    # ξ of rank 2: Ȧ of rank 1 (gauge-projected), Ḃ of rank 1
    u = torch.randn(M, 1, dtype=F64, generator=g)
    u = u - A_L @ (A_L.mT @ u)
    A_dot = u @ torch.randn(1, R, dtype=F64, generator=g)
    B_dot = torch.randn(N, 1, dtype=F64, generator=g) @ torch.randn(1, R, dtype=F64, generator=g)
    Po, Qo, info = ortho_lr(A_L, B_R, A_dot, B_dot)
    s = torch.linalg.svdvals(Po @ Qo.mT)
    torch.testing.assert_close(s[:2], torch.ones(2, dtype=F64), rtol=0, atol=1e-12)
    assert s[2:].abs().max() < 1e-12, "noise directions must be zeroed, not raised to 1"
    torch.testing.assert_close(
        Po @ Qo.mT, dense_polar(tangent_dense(A_L, B_R, A_dot, B_dot)), rtol=0, atol=1e-11
    )
    zero = ortho_lr(A_L, B_R, torch.zeros_like(A_dot), torch.zeros_like(B_dot))
    assert (zero[0] @ zero[1].mT).abs().max() == 0


def test_batched_equals_per_layer():
    man, A_L, B, B_R, P, Q = setup(7, batch=(4,))
    batched = project_lr(A_L, B_R, P, Q)
    Pb, Qb, _ = ortho_lr(A_L, B_R, *batched)
    Ub, Sb, Vb = retract_lr(P, Q, R)
    for i in range(4):
        single = project_lr(A_L[i], B_R[i], P[i], Q[i])
        torch.testing.assert_close(batched[0][i], single[0], rtol=0, atol=1e-13)
        torch.testing.assert_close(batched[1][i], single[1], rtol=0, atol=1e-13)
        Ps, Qs, _ = ortho_lr(A_L[i], B_R[i], *single)
        torch.testing.assert_close(Pb[i] @ Qb[i].mT, Ps @ Qs.mT, rtol=0, atol=1e-12)
        Us, Ss, Vs = retract_lr(P[i], Q[i], R)
        torch.testing.assert_close(Ub[i] * Sb[i] @ Vb[i].mT, Us * Ss @ Vs.mT, rtol=0, atol=1e-12)


def test_one_backward_gives_riemannian_gradient():
    """Z1.grad and B.grad from ONE ordinary backward equal P_T(G) of a dense autograd gradient."""
    for seed in SEEDS:
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(N, M), torch.nn.Tanh(), torch.nn.Linear(M, 7)).double()
        x, y = torch.randn(16, N, dtype=F64), torch.randn(16, 7, dtype=F64)
        layer = inject_adapters(net, R, ["0"])["0"]
        ((net(x) - y) ** 2).mean().backward()
        A_dot = layer.Z1.grad - layer.A_L @ (layer.A_L.mT @ layer.Z1.grad)
        xi = tangent_dense(layer.A_L, layer.B_R, A_dot, layer.B.grad)
        # dense reference: the same function of W_eff = W + delta as an autograd leaf
        W = (layer.base.weight + layer.delta_weight()).detach().requires_grad_(True)
        out = net[2](torch.tanh(torch.nn.functional.linear(x, W, layer.base.bias)))
        (G,) = torch.autograd.grad(((out - y) ** 2).mean(), W)
        torch.testing.assert_close(xi, dense_proj(layer.A_L, layer.B_R, G), rtol=0, atol=1e-13)
        assert layer.base.weight.grad is None


def test_manifold_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        FixedRankManifold(5, 4, 5)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", ["full-rank", "rank-1", "zero", "out<2r"])
def test_tangent_basis_represents_xi_with_orthonormal_bases(seed, case):
    m = 5 if case == "out<2r" else M
    man = FixedRankManifold(m, N, R)
    g = torch.Generator().manual_seed(seed)
    A_L, B = man.random_point(2, generator=g)
    B_R = orthonormal_basis(B)
    A_dot, B_dot = project_lr(
        A_L, B_R, torch.randn(2, m, 4, dtype=F64, generator=g), torch.randn(2, N, 4, dtype=F64, generator=g)
    )
    if case == "rank-1":
        A_dot, B_dot = project_lr(
            A_L,
            B_R,
            torch.randn(2, m, 1, dtype=F64, generator=g),
            torch.randn(2, N, 1, dtype=F64, generator=g),
        )
    if case == "zero":
        A_dot, B_dot = torch.zeros_like(A_dot), torch.zeros_like(B_dot)
    basis = TangentBasis(A_L, B_R, A_dot, B_dot)
    # rank-deficient and zero complements: Householder's extra columns are not ⊥ A_L, and the basis is
    # repaired (re-orthogonalized + CholeskyQR) instead of falling back to plain QRs twice as wide
    assert basis.structured == (case != "out<2r")
    k_L, k_R = basis.core.shape[-2:]
    Q_L = basis.left(torch.eye(k_L, dtype=F64).expand(2, k_L, k_L))
    Q_R = basis.right(torch.eye(k_R, dtype=F64).expand(2, k_R, k_R))
    torch.testing.assert_close(
        Q_L.mT @ Q_L, torch.eye(k_L, dtype=F64).expand(2, k_L, k_L), rtol=0, atol=1e-13
    )
    torch.testing.assert_close(
        Q_R.mT @ Q_R, torch.eye(k_R, dtype=F64).expand(2, k_R, k_R), rtol=0, atol=1e-13
    )
    torch.testing.assert_close(
        Q_L @ basis.core @ Q_R.mT, tangent_dense(A_L, B_R, A_dot, B_dot), rtol=0, atol=1e-13
    )
    torch.testing.assert_close(basis.left(basis.a), A_L, rtol=0, atol=1e-13)
    torch.testing.assert_close(basis.right(basis.b), B_R, rtol=0, atol=1e-13)
    torch.testing.assert_close(basis.right(basis.coords_of_B(B)), B, rtol=0, atol=1e-13)


@pytest.mark.parametrize("seed", SEEDS)
def test_tangent_basis_repairs_an_ill_conditioned_fp32_complement(seed):
    """Momentum at rank 64 with 32 tokens has a complement of condition number 1e3–1e4: in fp32 its
    Householder Q misses orthogonality to A_L by more than 64 ulp. That side used to fall back to plain QRs
    twice as wide (half of the step at rank 64); it is now re-orthogonalized, with the same guarantees."""
    g = torch.Generator().manual_seed(seed)
    m, n, r = 512, 256, 16
    A_L = orthonormal_basis(torch.randn(m, r, generator=g, dtype=F64))
    B_R = orthonormal_basis(torch.randn(n, r, generator=g, dtype=F64))
    spectrum = torch.logspace(0, -4, r, dtype=F64)  # cond 1e4
    U = orthonormal_basis(torch.randn(m, r, generator=g, dtype=F64))
    A_dot = (U - A_L @ (A_L.mT @ U)) * spectrum @ orthonormal_basis(torch.randn(r, r, generator=g, dtype=F64))
    B_dot = torch.randn(n, r, generator=g, dtype=F64) * spectrum
    A_L, B_R, A_dot, B_dot = (t.float() for t in (A_L, B_R, A_dot, B_dot))
    A_L, B_R = orthonormal_basis(A_L), orthonormal_basis(B_R)  # orthonormal in fp32 itself
    naive = torch.linalg.qr(A_dot - A_L @ (A_L.mT @ A_dot)).Q
    tol = 64 * torch.finfo(torch.float32).eps
    assert float((A_L.mT @ naive).abs().max()) > tol  # the case the repair exists for
    basis = TangentBasis(A_L, B_R, A_dot, B_dot)
    assert basis.structured
    eye = torch.eye(2 * r)
    Q_L, Q_R = basis.left(eye), basis.right(eye)
    assert float((Q_L.mT @ Q_L - eye).abs().max()) <= tol
    assert float((Q_R.mT @ Q_R - eye).abs().max()) <= tol
    xi = tangent_dense(A_L.double(), B_R.double(), A_dot.double(), B_dot.double())
    err = (Q_L.double() @ basis.core.double() @ Q_R.double().mT - xi).abs().max()
    assert float(err) < 1e-6 * float(xi.abs().max())


def dense_proj_at(X, Z, r=R):
    """P_T(Z) at the dense point X, with bases from X's own SVD (independent of the implementation)."""
    U, _, Vh = torch.linalg.svd(X, full_matrices=False)
    return dense_proj(U[:, :r], Vh[:r].mT, Z)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tokens", [5, 1], ids=["full-rank", "rank-1"])
def test_the_optimizers_coordinate_form_equals_the_dense_manifold_operations(seed, tokens):
    """The three methods the optimizers step through (rgrad_from_probes, tangent_basis,
    retract_and_transport) against dense float64 P_T, truncated SVD and projection transport: one
    implementation of the geometry (docs/method.md §3), shared by the optimizers and the manifold object."""
    man, A_L, B, B_R, _, _ = setup(seed, batch=(2,))
    g = torch.Generator().manual_seed(100 + seed)
    G = torch.randn(2, M, tokens, dtype=F64, generator=g) @ torch.randn(2, tokens, N, dtype=F64, generator=g)
    A_dot, B_dot = man.rgrad_from_probes(A_L, G @ B_R, G.mT @ A_L)  # what one backward leaves in Z1, B
    X = point_dense(A_L, B)
    for i in range(2):
        torch.testing.assert_close(
            tangent_dense(A_L[i], B_R[i], A_dot[i], B_dot[i]), dense_proj_at(X[i], G[i]), rtol=0, atol=1e-12
        )
    P, Q = torch.randn(2, M, 4, dtype=F64, generator=g), torch.randn(2, N, 4, dtype=F64, generator=g)
    mom_A, mom_B = man.proj(A_L, B, P, Q)  # a transported momentum at X
    # the heavy-ball direction d = gradient + momentum, in its own bases; retract X·decay − η d and
    # transport d itself (Riemannion's raw momentum store)
    basis = man.tangent_basis(A_L, B_R, A_dot + mom_A, B_dot + mom_B)
    d = tangent_dense(A_L, B_R, A_dot + mom_A, B_dot + mom_B)
    eta, decay = 0.3, 0.9
    A_new, B_new, B_R_new, tA, tB = man.retract_and_transport(basis, B, -eta * basis.core, decay, basis.core)
    X_new = point_dense(A_new, B_new)
    for i in range(2):
        torch.testing.assert_close(X_new[i], truncated_svd(decay * X[i] - eta * d[i], R), rtol=0, atol=1e-12)
        torch.testing.assert_close(
            tangent_dense(A_new[i], B_R_new[i], tA[i], tB[i]),
            dense_proj_at(X_new[i], d[i]),
            rtol=0,
            atol=1e-12,
        )
    torch.testing.assert_close(A_new.mT @ A_new, torch.eye(R, dtype=F64).expand(2, R, R), rtol=0, atol=1e-13)
    torch.testing.assert_close(
        B_R_new.mT @ B_R_new, torch.eye(R, dtype=F64).expand(2, R, R), rtol=0, atol=1e-13
    )
