"""The method catalogue (schema/methods.json): every initialization and optimizer, read once.

The one description of the methods that both languages read (src/core/catalogue.ts is the TypeScript
reader; scripts/gen-catalogue.mjs writes the schema's enums and rules from it): ids, labels, the family
of each optimizer (Riemannian on the manifold point, or Euclidean on the factors), the method fields it
takes with their defaults, its default learning rate and the range a learning-rate search draws from.
A bottom module: it imports nothing from the package but the schema locator.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any


@cache
def catalogue() -> dict[str, Any]:
    from riemannlora.schemas import schema_dir

    return json.loads((schema_dir() / "methods.json").read_text(encoding="utf-8"))


def _by_id(kind: str) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in catalogue()[kind]}


def inits() -> tuple[str, ...]:
    return tuple(i["id"] for i in catalogue()["inits"])


def optimizers() -> tuple[str, ...]:
    return tuple(o["id"] for o in catalogue()["optimizers"])


def optimizer(name: str) -> dict[str, Any]:
    return _by_id("optimizers")[name]


def init(name: str) -> dict[str, Any]:
    return _by_id("inits")[name]


def parametrization(optimizer_id: str) -> str:
    """ "manifold" for a Riemannian optimizer, "factors" for a Euclidean one."""
    return catalogue()["families"][optimizer(optimizer_id)["family"]]["parametrization"]


def riemannian() -> tuple[str, ...]:
    return tuple(o for o in optimizers() if parametrization(o) == "manifold")


def takes(optimizer_id: str, param: str) -> bool:
    """Whether `method.<param>` means something for this optimizer (else it is dropped with a warning)."""
    return param in optimizer(optimizer_id)["params"]


def param_default(optimizer_id: str, param: str) -> Any:
    return optimizer(optimizer_id)["params"].get(param, {}).get("default")


def default_lr(optimizer_id: str) -> float:
    return float(optimizer(optimizer_id)["lr"]["default"])


def lr_search_range(optimizer_id: str, task_kind: str | None = None) -> tuple[float, float]:
    """`lr.search`, or on a task the catalogue scales (`task_lr_search`): the default x `from_default`.

    The same rule as src/core/catalogue.ts `lrSearchRange`.
    """
    entry = optimizer(optimizer_id)
    scales = catalogue().get("task_lr_search", {})
    scaled = scales.get(task_kind) if task_kind and not task_kind.startswith("$") else None
    if isinstance(scaled, dict):
        a, b = scaled["from_default"]
        d = float(entry["lr"]["default"])
        return float(f"{d * a:.3g}"), float(f"{d * b:.3g}")
    low, high = entry["lr"]["search"]
    return float(low), float(high)


def starts(init_id: str, optimizer_id: str) -> bool:
    """Whether `init_id` can start the parametrization that `optimizer_id` trains."""
    return parametrization(optimizer_id) in init(init_id)["parametrizations"]
