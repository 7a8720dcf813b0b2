"""Optimizers for LoRA adapters.

Riemannian (parametrization="manifold", docs/method.md §4): `Riemannion`, `RiemannianSGD`.
Euclidean baselines on the factors (parametrization="factors"): `ScaledAdamW` (Zhang & Pilanci),
`MuonFactors` (per-factor Muon), `create_loraplus_optimizer` (LoRA+); plain LoRA uses `torch.optim.AdamW`
or `torch.optim.SGD` directly.
"""

from .loraplus import create_loraplus_optimizer
from .muon import MuonFactors, newton_schulz5
from .riemannian_sgd import RiemannianSGD
from .riemannion import Riemannion
from .scaled_adamw import ScaledAdamW, lora_factor_pairs

__all__ = [
    "MuonFactors",
    "RiemannianSGD",
    "Riemannion",
    "ScaledAdamW",
    "create_loraplus_optimizer",
    "lora_factor_pairs",
    "newton_schulz5",
]
