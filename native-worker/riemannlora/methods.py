"""One call from a run configuration to a ready model and optimizer: inject, initialize, build the optimizer.

`setup_method` is what the worker calls for `method.init` × `method.optimizer` (run-config schema).
Riemannian optimizers (Bogachev et al., arXiv 2507.12142) train `parametrization="manifold"` adapters; the
Euclidean baselines (docs/baselines.md) train `parametrization="factors"`:

| optimizer        | what                                                     | reference            |
| ---------------- | -------------------------------------------------------- | -------------------- |
| riemannion       | Muon on M_r (`Riemannion`)                               | arXiv 2507.12142 v2  |
| riemannian-sgd   | heavy-ball Riemannian SGD (`RiemannianSGD`)              | arXiv 2507.12142 v1  |
| riemannian-adam  | its Adam-like normalized variant (`adam_like=True`)      | arXiv 2507.12142 v1  |
| adamw / sgd      | torch AdamW / SGD on lora_A, lora_B                      | Hu et al. 2022       |
| scaled-adamw     | `ScaledAdamW`, r×r preconditioned AdamW                  | Zhang & Pilanci 2024 |
| muon             | `MuonFactors`, Muon on each factor                       | Jordan et al. 2024   |
| loraplus         | AdamW with η_B = ratio·η_A (`create_loraplus_optimizer`) | Hayou et al. 2024    |

Inits: `loi` (docs/method.md §5, either parametrization), `lora` (kaiming A / zero B; on M_r the §5 tiny
random point), `pissa`, `lora-ga`, `gaussian` (factors only). rsLoRA is `rslora=True`, DoRA is
`dora=True` (factors, zero-product starts only). Learning rates default to `DEFAULT_LR[optimizer]`:
starting points, not tuned values — tune per method before comparing (arXiv 2602.04998).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from . import catalogue
from .run_config import AdapterConfig, LoiConfig, MethodConfig

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

_INIT_NAMES = {i: catalogue.init(i)["label"] for i in INITS}
_OPT_NAMES = {o: catalogue.optimizer(o)["label"] for o in OPTIMIZERS}


@dataclass
class MethodSetup:
    """What `setup_method` built: the optimizer over the adapters, and how the start was made."""

    optimizer: torch.optim.Optimizer
    adapters: dict = field(repr=False)
    parametrization: str
    init_seconds: float
    description: str
    lr: float
    init_report: object = None  # LOIReport for init="loi" (seconds, passes, captured energy per layer)


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


def _build_optimizer(model, optimizer, lr, momentum, betas, weight_decay, loraplus_ratio, momentum_store):
    from .optim import MuonFactors, RiemannianSGD, Riemannion, ScaledAdamW, create_loraplus_optimizer

    if optimizer == "riemannion":
        return Riemannion(
            model, lr=lr, momentum=momentum, weight_decay=weight_decay, momentum_store=momentum_store
        )
    if optimizer in ("riemannian-sgd", "riemannian-adam"):
        return RiemannianSGD(
            model,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            adam_like=optimizer == "riemannian-adam",
        )
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if optimizer == "sgd":
        # dampening = momentum: the EMA form of heavy ball, the same as RiemannianSGD's default, so that
        # LoRA-SGD
        # and Riemannian SGD share learning-rate scales.
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, dampening=momentum, weight_decay=weight_decay
        )
    if optimizer == "scaled-adamw":
        return ScaledAdamW(model, lr=lr, betas=betas, weight_decay=weight_decay)
    if optimizer == "muon":
        return MuonFactors(model, lr=lr, momentum=momentum, weight_decay=weight_decay, adamw_betas=betas)
    return create_loraplus_optimizer(
        model, lr=lr, ratio=loraplus_ratio, betas=betas, weight_decay=weight_decay
    )


def _run_init(
    model,
    init,
    parametrization,
    init_batches,
    loss_fn,
    seed,
    loi_oversample,
    loi_power_iters,
    loi_scale,
    init_reduce_fn=None,
):
    """Apply the start; returns loi_init's LOIReport for init="loi", else None."""
    from .init import gaussian_init, loi_init, lora_ga_init, lora_init, pissa_init

    if init == "lora":
        lora_init(model, seed=seed)
    elif init == "gaussian":
        gaussian_init(model, seed=seed)
    elif init == "pissa":
        pissa_init(model, seed=seed)
    elif init == "lora-ga":
        lora_ga_init(model, list(init_batches), loss_fn, seed=seed)
    else:
        return loi_init(
            model,
            list(init_batches),
            loss_fn,
            oversample=loi_oversample,
            power_iters=loi_power_iters,
            scale=loi_scale,
            seed=seed,
            reduce_fn=init_reduce_fn,
        )
    return None


def method_configs(
    *,
    rank: int,
    alpha: float | None = None,
    target_modules: Sequence[str] | str,
    dropout: float = 0.0,
    rslora: bool = False,
    dora: bool = False,
    init: str = "lora",
    optimizer: str = "adamw",
    lr: float | None = None,
    momentum: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    loraplus_ratio: float = 16.0,
    loi_oversample: int = 16,
    loi_power_iters: int = 1,
    loi_scale: float | None = None,
    riemannion_momentum_store: str = "raw",
) -> tuple[MethodConfig, AdapterConfig]:
    """The (MethodConfig, AdapterConfig) of `setup_method`'s keyword form: its keywords and defaults.

    `riemannion_momentum_store` is `MethodConfig.momentum_store`, `loi_*` are `MethodConfig.loi`'s fields.
    """
    method = MethodConfig(
        init=init,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        betas=tuple(betas),
        weight_decay=weight_decay,
        loraplus_ratio=loraplus_ratio,
        momentum_store=riemannion_momentum_store,
        loi=LoiConfig(oversample=loi_oversample, power_iters=loi_power_iters, scale=loi_scale),
    )
    adapter = AdapterConfig(
        rank=rank, target_modules=target_modules, alpha=alpha, dropout=dropout, rslora=rslora, dora=dora
    )
    return method, adapter


def setup_method(
    model: nn.Module,
    method: MethodConfig | None = None,
    adapter: AdapterConfig | None = None,
    *,
    init_batches: Iterable | None = None,
    loss_fn: Callable | None = None,
    seed: int = 0,
    init_reduce_fn=None,
    **keywords,
) -> MethodSetup:
    """Inject `adapter` layers into `model`, apply the start `method.init`, build `method.optimizer`.

    `method` and `adapter` are a `MethodConfig` and an `AdapterConfig` (riemannlora.run_config); or, as a
    convenience, their fields as keywords: `setup_method(model, rank=16, target_modules=[...], init="loi",
    optimizer="riemannion", lr=..., ...)` (the keywords of `method_configs`).

    Riemannian optimizers get `parametrization="manifold"` layers (`alpha` is ignored there: the scale lives
    in the point), the others `"factors"` (an `adapter.parametrization` that disagrees is an error).
    `init_batches` and `loss_fn(model, batch)` are needed by the gradient-based starts (loi, lora-ga); all
    their passes run on those same batches. `seed` makes the start reproducible. `init_reduce_fn(tensor)`
    reduces LOI's probe products in place across data-parallel ranks (e.g. an all-reduce average under
    torchrun; None: one process). `lr=None` takes `DEFAULT_LR[optimizer]`; `momentum=None` the optimizer's
    default (0.9 for the heavy-ball methods, 0.95 for Muon); `betas=None` (0.9, 0.999). Invalid
    combinations raise ValueError naming the field. Fields the optimizer does not take are errors here;
    `riemannlora.run_config.for_optimizer` drops them with a warning first (what the worker does).
    """
    if method is None and adapter is None:
        method, adapter = method_configs(**keywords)
    elif keywords:
        raise TypeError(
            "setup_method: pass a MethodConfig and an AdapterConfig, or their fields as keywords, not both "
            f"(got {', '.join(sorted(keywords))})"
        )
    if not isinstance(method, MethodConfig) or not isinstance(adapter, AdapterConfig):
        raise TypeError(
            "setup_method(model, method, adapter): method must be a MethodConfig and adapter an "
            f"AdapterConfig, got {type(method).__name__} and {type(adapter).__name__}"
        )
    init, optimizer, lr, momentum = method.init, method.optimizer, method.lr, method.momentum
    loraplus_ratio = method.loraplus_ratio
    loi = method.loi or LoiConfig()
    parametrization = validate_method(
        init=init,
        optimizer=optimizer,
        dora=adapter.dora,
        rslora=adapter.rslora,
        momentum=momentum,
        init_batches=init_batches,
        loss_fn=loss_fn,
        riemannion_momentum_store=method.momentum_store,
    )
    if adapter.parametrization not in (None, parametrization):
        raise ValueError(
            f"adapter.parametrization={adapter.parametrization!r} does not fit optimizer={optimizer!r}, "
            f"which trains {parametrization!r} adapters; leave parametrization unset"
        )
    if lr is None:
        lr = DEFAULT_LR[optimizer]
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if optimizer == "loraplus" and not loraplus_ratio >= 1:
        raise ValueError(f"loraplus_ratio must be >= 1 (η_B / η_A), got {loraplus_ratio}")
    if momentum is None:
        momentum = _DEFAULT_MOMENTUM.get(optimizer)

    from .adapters import adapter_layers, inject_adapters

    if adapter_layers(model):
        raise ValueError(
            "setup_method: the model already has adapter layers; pass the base model (setup_method "
            "injects the adapters itself)"
        )
    adapters = inject_adapters(model, dataclasses.replace(adapter, parametrization=parametrization))
    start = time.perf_counter()
    report = _run_init(
        model,
        init,
        parametrization,
        init_batches,
        loss_fn,
        seed,
        loi.oversample,
        loi.power_iters,
        loi.scale,
        init_reduce_fn,
    )
    init_seconds = time.perf_counter() - start
    betas = tuple(method.betas) if method.betas is not None else (0.9, 0.999)
    opt = _build_optimizer(
        model, optimizer, lr, momentum, betas, method.weight_decay, loraplus_ratio, method.momentum_store
    )

    rslora, dora, rank = adapter.rslora, adapter.dora, adapter.rank
    variant = (" + rsLoRA" if rslora else "") + (" + DoRA" if dora else "")
    init_name = (
        _INIT_NAMES[init]
        if not (init == "lora" and parametrization == "manifold")
        else ("random tiny point of M_r (docs/method.md §5)")
    )
    description = (
        f"{_OPT_NAMES[optimizer]} on {parametrization}, init {init_name}{variant}, rank {rank}, lr {lr:g}"
        + (f", momentum {momentum:g}" if momentum is not None else "")
        + (f", ratio {loraplus_ratio:g}" if optimizer == "loraplus" else "")
    )
    return MethodSetup(
        optimizer=opt,
        adapters=adapters,
        parametrization=parametrization,
        init_seconds=init_seconds,
        description=description,
        lr=float(lr),
        init_report=report,
    )
