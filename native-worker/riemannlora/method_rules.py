"""What a method may be, without torch: the catalogue's views and `validate_method`.

`validate`, the editor's checks and the worker's config checks call `validate_method` on every config;
keeping it here (not in methods.py, which builds optimizers and needs torch) keeps `validate` fast: a CPU
config is checked without importing torch at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import catalogue

# What a method is comes from the catalogue (schema/methods.json); these names are its views.
INITS = catalogue.inits()
OPTIMIZERS = catalogue.optimizers()
RIEMANNIAN = catalogue.riemannian()
MOMENTUM_STORES = ("raw", "orthogonalized")

# Each optimizer's own default learning rate (the catalogue's `lr.default`): Riemannion, Adam (LoRA), Muon
# and RPrecAdamW (ScaledAdamW) are the paper's values (Llama-3-8B, r = 16; docs/method.md §8); LoRA+ uses a
# half-size η_A as Hayou et al. advise with ratio 16; the SGD family (no published values at this scale)
# starts at 1e-2 (Riemannian SGD's own default), and the Adam-like Riemannian SGD, whose steps have unit
# norm per factor, at 1e-3.
DEFAULT_LR: dict[str, float] = {o: catalogue.default_lr(o) for o in OPTIMIZERS}

# Heavy-ball methods default to 0.9 (Riemannion's paper value; SGD alike, for a like-for-like comparison);
# Muon to 0.95. Only the optimizers that take a momentum have an entry.
_DEFAULT_MOMENTUM = {
    o: catalogue.param_default(o, "momentum") for o in OPTIMIZERS if catalogue.takes(o, "momentum")
}


def _choice(name: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def validate_method(
    *,
    init: str,
    optimizer: str,
    dora: bool = False,
    rslora: bool = False,
    momentum: float | None = None,
    init_batches=None,
    loss_fn=None,
    riemannion_momentum_store: str = "raw",
) -> str:
    """Check one init × optimizer combination; return its parametrization. Errors name field and fix."""
    _choice("init", init, INITS)
    _choice("optimizer", optimizer, OPTIMIZERS)
    _choice("riemannion_momentum_store", riemannion_momentum_store, MOMENTUM_STORES)
    riemannian = optimizer in RIEMANNIAN
    if not catalogue.starts(init, optimizer):
        allowed = ", ".join(repr(i) for i in INITS if catalogue.starts(i, optimizer))
        raise ValueError(
            f"init={init!r} does not apply to optimizer={optimizer!r}: it cannot start the "
            f"{catalogue.parametrization(optimizer)} parametrization (a zero-B start is not a point of M_r); "
            f"use one of {allowed} (init='lora' starts from a tiny random point of M_r)"
        )
    if riemannian and dora:
        raise ValueError(f"dora=True needs a factor optimizer (adamw, sgd, ...), not optimizer={optimizer!r}")
    if riemannian and rslora:
        raise ValueError(
            f"rslora=True has no effect with optimizer={optimizer!r} (the scale lives in the point); drop "
            "rslora"
        )
    if dora and init in ("loi", "pissa", "lora-ga"):
        raise ValueError(
            f"dora=True does not combine with init={init!r} (a start away from zero needs the frozen "
            "offset, which DoRA's norm does not support); use init='lora' or 'gaussian'"
        )
    if momentum is not None and optimizer not in _DEFAULT_MOMENTUM:
        raise ValueError(
            f"momentum does not apply to optimizer={optimizer!r} (an Adam-type method: set betas); leave "
            "momentum unset"
        )
    if momentum is not None and not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if riemannion_momentum_store != "raw" and optimizer != "riemannion":
        raise ValueError("riemannion_momentum_store applies to optimizer='riemannion' only")
    if init in ("loi", "lora-ga") and (init_batches is None or loss_fn is None):
        raise ValueError(
            f"init={init!r} is gradient-based: pass init_batches (a list of batches) and loss_fn(model, "
            "batch) -> scalar"
        )
    return "manifold" if riemannian else "factors"
