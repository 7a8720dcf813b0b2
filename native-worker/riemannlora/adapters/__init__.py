"""Adapter layers: the manifold point (RiemannLoRA) and PEFT-like factors (baselines), and injection."""

from .base import AdapterLayerBase, owner_of
from .factors import FactorLoRALayer
from .inject import PARAMETRIZATIONS, adapter_layers, inject_adapters
from .manifold import ManifoldLoRALayer

__all__ = [
    "PARAMETRIZATIONS",
    "AdapterLayerBase",
    "FactorLoRALayer",
    "ManifoldLoRALayer",
    "adapter_layers",
    "inject_adapters",
    "owner_of",
]
