"""Task kinds by name (the run config's `task.kind`). Importing this module does not import torch."""

from __future__ import annotations

import importlib
from typing import Any

# kind -> (module, class name)
TASKS = {
    "synthetic-lowrank": ("riemannlora.tasks.synthetic_lowrank", "SyntheticLowRankTask"),
    "causal-lm": ("riemannlora.tasks.causal_lm", "CausalLMTask"),
    "builtin-default": ("riemannlora.tasks.builtin_default", "BuiltinDefaultTask"),
}


def task_default_overrides(kind: str) -> dict[str, Any]:
    """Task fields whose recommended value differs from the schema default for this kind."""
    if kind == "builtin-default":
        from riemannlora.assets import recommended_task_fields

        return recommended_task_fields()
    return {}


def task_memory_estimate(config: dict[str, Any]) -> int | None:
    """Bytes of host memory the task of `config` needs, where its config says (tasks/footprint.py); None
    when it cannot (a model loaded from disk). Imports no torch."""
    from riemannlora.tasks.footprint import ESTIMATES

    estimate = ESTIMATES.get(config["task"]["kind"])
    return estimate(config) if estimate else None


def build_task(config: dict[str, Any]):
    """Instantiate the task of a resolved config."""
    kind = config["task"]["kind"]
    if kind not in TASKS:
        raise ValueError(f"unknown task kind {kind!r}; allowed: {', '.join(TASKS)}")
    module, cls = TASKS[kind]
    return getattr(importlib.import_module(module), cls)(config)
