"""RiemannLoRA: LoRA adapters optimized on the fixed-rank matrix manifold.

Bogachev et al., arXiv 2507.12142 ("RiemannLoRA" v1; "LoRA meets Riemannion" v2, ICLR 2026).

Public API (names are a contract):

    import riemannlora as rl
    adapters = rl.inject_adapters(model, rank=16, target_modules=["q_proj", "v_proj"],
                                  parametrization="manifold")
    rl.loi_init(model, batches, loss_fn)
    opt = rl.Riemannion(model, lr=1e-4, momentum=0.9)
    rl.export_peft(model, "out/adapter")
    rl.import_peft(model, "some/peft_adapter", parametrization="manifold")

    # the same through config objects (riemannlora.run_config; what the worker passes):
    setup = rl.setup_method(model, rl.MethodConfig(init="loi", optimizer="riemannion"),
                            rl.AdapterConfig(rank=16, target_modules=("q_proj", "v_proj")),
                            init_batches=batches, loss_fn=loss_fn)

Names resolve lazily so that `import riemannlora` stays cheap for the worker's `doctor` and `validate`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS = {
    "inject_adapters": "riemannlora.adapters",
    "adapter_layers": "riemannlora.adapters",
    "ManifoldLoRALayer": "riemannlora.adapters",
    "FactorLoRALayer": "riemannlora.adapters",
    "FixedRankManifold": "riemannlora.geometry",
    "Riemannion": "riemannlora.optim",
    "RiemannianSGD": "riemannlora.optim",
    "ScaledAdamW": "riemannlora.optim",
    "MuonFactors": "riemannlora.optim",
    "create_loraplus_optimizer": "riemannlora.optim",
    "loi_init": "riemannlora.init",
    "pissa_init": "riemannlora.init",
    "lora_ga_init": "riemannlora.init",
    "export_peft": "riemannlora.peft_io",
    "import_peft": "riemannlora.peft_io",
    "setup_method": "riemannlora.methods",
    "RunConfig": "riemannlora.run_config",
    "AdapterConfig": "riemannlora.run_config",
    "MethodConfig": "riemannlora.run_config",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'riemannlora' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
