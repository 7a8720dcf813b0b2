"""Fixed-rank geometry (docs/method.md §1–3): projection, retraction, transport, orthogonalization."""

from .fixed_rank import (
    FixedRankManifold,
    default_ortho_eps,
    geometry_dtype,
    ortho_lr,
    orthonormal_basis,
    point_dense,
    project_lr,
    retract_lr,
    tangent_dense,
    tangent_factors,
)
from .tangent_basis import TangentBasis

__all__ = [
    "FixedRankManifold",
    "TangentBasis",
    "default_ortho_eps",
    "geometry_dtype",
    "ortho_lr",
    "orthonormal_basis",
    "point_dense",
    "project_lr",
    "retract_lr",
    "tangent_dense",
    "tangent_factors",
]
