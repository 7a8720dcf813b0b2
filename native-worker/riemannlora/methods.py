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
from .method_rules import _DEFAULT_MOMENTUM, DEFAULT_LR, INITS, OPTIMIZERS, validate_method
from .method_rules import MOMENTUM_STORES as MOMENTUM_STORES  # re-exported: part of this module's API
from .method_rules import RIEMANNIAN as RIEMANNIAN
from .run_config import AdapterConfig, LoiConfig, MethodConfig

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
        # dampening = momentum: the EMA form of heavy ball, the same as RiemannianSGD's default (whose
        # first buffer is also the undampened gradient), so LoRA-SGD and Riemannian SGD share
        # learning-rate scales from the first step on (docs/method.md §4).
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
