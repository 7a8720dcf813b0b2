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
        from riemannlora.tasks.builtin_default import recommended_task_fields

        return recommended_task_fields()
    return {}


def task_memory_estimate(config: dict[str, Any]) -> int | None:
    """Bytes of host memory the task of `config` needs, where the task can say without building itself
    (`estimated_bytes` of its module); None when it cannot (a model loaded from disk)."""
    module, _ = TASKS[config["task"]["kind"]]
    estimate = getattr(importlib.import_module(module), "estimated_bytes", None)
    return estimate(config) if estimate else None


def build_task(config: dict[str, Any]):
    """Instantiate the task of a resolved config."""
    kind = config["task"]["kind"]
    if kind not in TASKS:
        raise ValueError(f"unknown task kind {kind!r}; allowed: {', '.join(TASKS)}")
    module, cls = TASKS[kind]
    return getattr(importlib.import_module(module), cls)(config)
