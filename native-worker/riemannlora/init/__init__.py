"""Adapter initializations (starts).

- `loi_init`: the locally optimal initialization of RiemannLoRA (docs/method.md §5), either parametrization.
- `lora_init` (LoRA / rsLoRA / LoRA+ / DoRA start: kaiming A, zero B), `gaussian_init`,
  `pissa_init` (PiSSA), `lora_ga_init` (LoRA-GA): the baselines' starts (docs/baselines.md).

Starts away from zero (LOI, PiSSA, LoRA-GA) freeze X₀ as a low-rank offset beside the adapter, so the model
function is unchanged at step 0 and the base weights are never mutated.
"""

from .loi import LOIReport, default_loi_scale, loi_init
from .lora import gaussian_init, lora_init
from .lora_ga import lora_ga_factors, lora_ga_init
from .pissa import pissa_init, top_singular_triplets

__all__ = [
    "LOIReport",
    "default_loi_scale",
    "gaussian_init",
    "loi_init",
    "lora_ga_factors",
    "lora_ga_init",
    "lora_init",
    "pissa_init",
    "top_singular_triplets",
]
