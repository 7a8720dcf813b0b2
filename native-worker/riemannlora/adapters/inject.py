"""Insert adapter layers into any ``torch.nn.Module`` (PEFT's target-module semantics)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..run_config import AdapterConfig
from .base import AdapterLayerBase, supported_base
from .factors import FactorLoRALayer
from .manifold import ManifoldLoRALayer

__all__ = ["inject_adapters", "adapter_config", "adapter_layers", "AdapterConfig", "PARAMETRIZATIONS"]

PARAMETRIZATIONS = ("manifold", "factors")


def adapter_config(
    rank: int,
    target_modules: Sequence[str] | str,
    alpha: float | None = None,
    parametrization: str = "manifold",
    dropout: float = 0.0,
    rslora: bool = False,
    dora: bool = False,
    dtype: torch.dtype | None = None,
    init_scale: float = 1e-6,
) -> AdapterConfig:
    """The :class:`AdapterConfig` of ``inject_adapters``' keyword form (its arguments and defaults)."""
    return AdapterConfig(
        rank=rank,
        target_modules=target_modules,
        alpha=alpha,
        parametrization=parametrization,
        dropout=dropout,
        rslora=rslora,
        dora=dora,
        dtype=dtype,
        init_scale=init_scale,
    )


def adapter_layers(model: nn.Module) -> dict[str, AdapterLayerBase]:
    """``{module path: adapter layer}`` of an already-injected model, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, AdapterLayerBase)}


def _matches(name: str, targets: Sequence[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def _output_head(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    if callable(getter):
        try:
            return getter()
        except Exception:  # some models raise NotImplementedError
            return None
    return None


def inject_adapters(
    model: nn.Module, adapter: AdapterConfig | int | None = None, *args, **keywords
) -> dict[str, AdapterLayerBase]:
    """Replace each targeted ``nn.Linear`` / HF ``Conv1D`` by an adapter layer and freeze the base model.

    ``adapter`` is an :class:`~riemannlora.run_config.AdapterConfig` (``inject_adapters(model, adapter)``),
    or, as a convenience, the same fields as arguments: ``inject_adapters(model, rank, target_modules,
    alpha=None, parametrization="manifold", dropout=0.0, rslora=False, dora=False, dtype=None,
    init_scale=1e-6)`` (`adapter_config`).

    ``target_modules``: name suffixes (a module matches if its full name equals an entry or ends with
    ``"." + entry``) or ``"all-linear"`` (every Linear/Conv1D except the output head ``lm_head``).
    ``parametrization="manifold"`` (also for None) gives :class:`ManifoldLoRALayer` (RiemannLoRA;
    ``alpha``, ``rslora`` do not apply: the scale lives in the point; ``init_scale`` is its tiny start,
    docs/method.md §5), ``"factors"`` gives :class:`FactorLoRALayer` (Euclidean baselines; ``alpha``
    defaults to ``rank``). ``dtype``: adapter/geometry dtype (default fp32, fp64 for fp64 models). Every
    base parameter of the model gets ``requires_grad=False``. Returns ``{module path: layer}``.
    """
    if isinstance(adapter, AdapterConfig):
        if args or keywords:
            raise TypeError("inject_adapters: pass an AdapterConfig or the adapter's fields, not both")
    else:
        adapter = adapter_config(*(() if adapter is None else (adapter,)), *args, **keywords)
    rank, target_modules, alpha = adapter.rank, adapter.target_modules, adapter.alpha
    dropout, rslora, dora, dtype = adapter.dropout, adapter.rslora, adapter.dora, adapter.dtype
    parametrization = adapter.parametrization or "manifold"
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    if dora and parametrization != "factors":
        raise ValueError("dora=True needs parametrization='factors' (DoRA is a Euclidean baseline)")
    if adapter_layers(model):
        raise ValueError("the model already has adapter layers; use adapter_layers(model) to get them")
    if isinstance(target_modules, str):
        if target_modules != "all-linear":
            target_modules = [target_modules]
    elif not target_modules:
        raise ValueError(
            "target_modules is empty: give module name suffixes, e.g. ['q_proj', 'v_proj'], or 'all-linear'"
        )
    else:
        target_modules = list(target_modules)  # as given (AdapterConfig keeps a tuple): the messages show it

    head = _output_head(model)
    candidates = [(n, m) for n, m in model.named_modules() if n and supported_base(m)]
    if target_modules == "all-linear":
        chosen = [(n, m) for n, m in candidates if m is not head and n.split(".")[-1] != "lm_head"]
    else:
        chosen = [(n, m) for n, m in candidates if _matches(n, target_modules)]
    if not chosen:
        names = ", ".join(n for n, _ in candidates[:12]) or "(none)"
        raise ValueError(
            f"target_modules={target_modules!r} matched no nn.Linear/Conv1D module. Available: {names}"
            + (" ..." if len(candidates) > 12 else "")
        )
    for name, module in chosen:  # validate everything before mutating the model
        in_f, out_f = (
            (module.weight.shape[1], module.weight.shape[0])
            if isinstance(module, nn.Linear)
            else (module.weight.shape)
        )
        if rank > min(in_f, out_f):
            raise ValueError(
                f"rank {rank} exceeds min(in, out) = {min(in_f, out_f)} of module {name!r}; lower the rank "
                "or "
                "exclude that module from target_modules"
            )

    for p in model.parameters():
        p.requires_grad_(False)
    layers: dict[str, AdapterLayerBase] = {}
    for name, module in chosen:
        if parametrization == "manifold":
            layer = ManifoldLoRALayer(
                module, rank, dropout=dropout, dtype=dtype, init_scale=adapter.init_scale
            )
        else:
            layer = FactorLoRALayer(
                module, rank, alpha=alpha, dropout=dropout, rslora=rslora, dora=dora, dtype=dtype
            )
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer)
        layers[name] = layer
    return layers
