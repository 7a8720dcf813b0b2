"""Independent oracle: pymanopt's FixedRankEmbedded (numpy, (U, S, Vᵀ) points) vs our factored geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from riemannlora.geometry import FixedRankManifold, orthonormal_basis, project_lr, tangent_dense

pymanopt = pytest.importorskip("pymanopt")
from pymanopt.manifolds import FixedRankEmbedded  # noqa: E402

M, N, R = 30, 20, 3


def _point(seed):
    g = torch.Generator().manual_seed(seed)
    man = FixedRankManifold(M, N, R)
    A_L, B = man.random_point(generator=g)
    # pymanopt stores X = u diag(s) vt; from ours: B = V Σ Wᵀ  ->  X = (A_L W) Σ Vᵀ
    V, S, Wt = torch.linalg.svd(B, full_matrices=False)
    point = (A_L @ Wt.mT).numpy(), S.numpy(), V.mT.numpy()
    return man, A_L, B, point, g


def _dense_tangent(pm, point, tv):
    U, S, V = pm.embedding(point, tv)
    return U @ S @ V.T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_agrees_with_pymanopt(seed):
    man, A_L, B, point, g = _point(seed)
    pm = FixedRankEmbedded(M, N, R)
    P, Q = (
        torch.randn(M, 4, dtype=torch.float64, generator=g),
        torch.randn(N, 4, dtype=torch.float64, generator=g),
    )
    ours = tangent_dense(A_L, orthonormal_basis(B), *project_lr(A_L, orthonormal_basis(B), P, Q)).numpy()
    theirs = _dense_tangent(pm, point, pm.projection(point, (P @ Q.mT).numpy()))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retraction_agrees_with_pymanopt(seed):
    man, A_L, B, point, g = _point(seed)
    pm = FixedRankEmbedded(M, N, R)
    Z = torch.randn(M, N, dtype=torch.float64, generator=g)
    B_R = orthonormal_basis(B)
    A_dot, B_dot = project_lr(A_L, B_R, Z, torch.eye(N, dtype=torch.float64))
    tv = pm.projection(point, Z.numpy())
    for t in (0.1, 1.0):
        new_A, new_B = man.retr(A_L, B, A_dot, B_dot, t=t)
        u, s, vt = pm.retraction(point, tv * t)
        # pymanopt adds np.spacing(1) to the singular values; irrelevant at this tolerance
        np.testing.assert_allclose((new_A @ new_B.mT).numpy(), u @ np.diag(s) @ vt, rtol=0, atol=1e-12)
    # transport: pymanopt also transports by projection
    new_A, new_B = man.retr(A_L, B, A_dot, B_dot, t=0.5)
    u, s, vt = pm.retraction(point, tv * 0.5)
    moved = tangent_dense(new_A, orthonormal_basis(new_B), *man.transp(A_L, B, new_A, new_B, A_dot, B_dot))
    theirs = _dense_tangent(pm, (u, s, vt), pm.transport(point, (u, s, vt), tv))
    np.testing.assert_allclose(moved.numpy(), theirs, rtol=0, atol=1e-11)
