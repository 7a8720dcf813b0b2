"""Zero-product LoRA starts: the LoRA default (kaiming-uniform A, zero B) and PEFT's "gaussian" variant.

References: E. Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022 (A random, B = 0,
so ΔW = 0 at the start); PEFT `init_lora_weights=True` (A ~ kaiming-uniform with a = √5, the `nn.Linear`
default) and `init_lora_weights="gaussian"` (A ~ N(0, 1/r²), i.e. std 1/r). rsLoRA (Kalajdzievski 2023,
arXiv 2312.03732) only changes the scaling `alpha/√r`, chosen at injection (`inject_adapters(rslora=True)`).

On a manifold-parametrized layer B = 0 is not a point of M_r (rank 0); `lora_init` then gives the
start of docs/method.md §5 instead: a random orthonormal A_L and tiny nonzero singular values.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..adapters import adapter_layers

# ------------------------------------------------------------------------------------------------------------
# helpers shared by the baseline initializations (pissa.py, lora_ga.py)


def adapter_items(model: nn.Module, who: str) -> dict[str, nn.Module]:
    """The model's adapter layers by module path; a clear error when there are none."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError(f"{who}: the model has no adapter layers; call inject_adapters(model, ...) first")
    return layers


def is_factor_layer(layer: nn.Module) -> bool:
    """True for the factor (Euclidean, PEFT-like) parametrization, False for the manifold one."""
    return isinstance(getattr(layer, "lora_A", None), nn.Parameter)


def _generator(seed: int) -> torch.Generator:
    # A CPU generator: the same seed gives the same start on every device and every data-parallel rank.
    return torch.Generator().manual_seed(int(seed))


@torch.no_grad()
def set_start(layer: nn.Module, lora_A: torch.Tensor, lora_B: torch.Tensor, scaling: float) -> None:
    """Start the adapter at X0 = scaling · lora_B @ lora_A and freeze the same X0 as the offset.

    The model function is unchanged (delta_weight() = 0) and the base weight is never mutated: this replaces
    the "base ← W − s·B0·A0" of PiSSA/LoRA-GA (exact in any precision, works on quantized bases). The
    offset is built from the factors as the layer stores them (after the cast to its dtype), so it cancels
    exactly.
    """
    layer.clear_offset()
    layer.load_factors(lora_A, lora_B, scaling)
    if is_factor_layer(layer):
        b0, a0 = layer.scaling * layer.lora_B.detach(), layer.lora_A.detach()
    else:
        b0, a0 = layer.A_L.detach(), layer.B.detach().t()
    layer.set_offset(b0, a0)


@torch.no_grad()
def start_zero_manifold(layer: nn.Module, gen: torch.Generator) -> None:
    """The substitute for B = 0 on M_r (docs/method.md §5): random orthonormal A_L, B_R; singular values
    `init_scale`."""
    kw = {"dtype": torch.float64}
    a_l = torch.linalg.qr(torch.randn(layer.out_features, layer.rank, generator=gen, **kw)).Q
    b_r = torch.linalg.qr(torch.randn(layer.in_features, layer.rank, generator=gen, **kw)).Q
    like = {"device": layer.B.device, "dtype": layer.B.dtype}
    layer.set_point(a_l.to(**like), (b_r * layer.init_scale).to(**like), B_R=b_r.to(**like))


@torch.no_grad()
def lora_init(model: nn.Module, seed: int = 0) -> dict[str, nn.Module]:
    """LoRA's start (Hu et al. 2022; PEFT default): `lora_A` kaiming-uniform (a = √5), `lora_B` = 0.

    Deterministic in `seed` (layers are visited in module order). Manifold layers get the docs/method.md §5
    zero-B substitute (random orthonormal A_L, tiny singular values). Returns the adapter layers.
    """
    layers = adapter_items(model, "lora_init")
    for index, (_name, layer) in enumerate(layers.items()):
        gen = _generator(seed * 100_003 + index)
        layer.clear_offset()
        if is_factor_layer(layer):
            a = torch.empty(layer.lora_A.shape, dtype=torch.float64)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=gen)
            layer.lora_A.copy_(a)
            layer.lora_B.zero_()
        else:
            start_zero_manifold(layer, gen)
    return layers


@torch.no_grad()
def gaussian_init(model: nn.Module, seed: int = 0) -> dict[str, nn.Module]:
    """PEFT's `init_lora_weights="gaussian"`: `lora_A` ~ N(0, (1/r)²), `lora_B` = 0, no offset (factors)."""
    layers = adapter_items(model, "gaussian_init")
    for index, (name, layer) in enumerate(layers.items()):
        if not is_factor_layer(layer):
            raise ValueError(
                f"gaussian_init: layer {name!r} is manifold-parametrized; a Gaussian A with B = 0 is not a "
                "point of M_r. Use init='lora' (the docs/method.md §5 start) or parametrization='factors'."
            )
        gen = _generator(seed * 100_003 + index)
        layer.clear_offset()
        a = torch.randn(layer.lora_A.shape, dtype=torch.float64, generator=gen) / layer.rank
        layer.lora_A.copy_(a)
        layer.lora_B.zero_()
    return layers
