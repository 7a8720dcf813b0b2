"""Fixed-rank geometry (docs/method.md §1–3): projection, retraction, transport, orthogonalization."""

from .fixed_rank import (
    ORTHO_RTOL,
    FixedRankManifold,
    geometry_dtype,
    ortho_lr,
    ortho_weights,
    orthonormal_basis,
    point_dense,
    project_lr,
    retract_lr,
    tangent_dense,
    tangent_factors,
)
from .tangent_basis import TangentBasis

__all__ = [
    "ORTHO_RTOL",
    "FixedRankManifold",
    "TangentBasis",
    "geometry_dtype",
    "ortho_lr",
    "ortho_weights",
    "orthonormal_basis",
    "point_dense",
    "project_lr",
    "retract_lr",
    "tangent_dense",
    "tangent_factors",
]
