"""Training tasks for the worker: `synthetic-lowrank`, `causal-lm`, `builtin-default`.

`build_task(config)` builds the task of a resolved run config; the modules themselves load lazily so that
the worker's `validate` and `doctor` commands stay fast.
"""

from .registry import TASKS, build_task, task_default_overrides

__all__ = ["TASKS", "build_task", "task_default_overrides"]
