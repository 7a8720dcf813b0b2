"""task.heldout: one held-out set as two disjoint halves, so that a learning-rate search selects on one
("validation": the even-numbered examples) and the reported runs are measured on the other ("test": the
odd-numbered); docs/comparisons.md. Torch-free: the tasks and the config check both use it.
"""

from __future__ import annotations

from typing import Any

from riemannlora.errors import WorkerError

HELDOUT_HALVES = {"all": slice(None), "validation": slice(0, None, 2), "test": slice(1, None, 2)}


def heldout_size(n: int, heldout: str) -> int:
    """How many of `n` held-out examples `task.heldout` keeps (all, the even-numbered or the odd-numbered)."""
    return len(range(n)[HELDOUT_HALVES[heldout]])


def heldout_part(items: Any, heldout: str, *, what: str, hint: str) -> Any:
    """The part of a held-out set (a list or a tensor, indexed along its first axis) that `heldout` names:
    all of it, the even indices 0, 2, 4, ... ("validation") or the odd ones ("test"). A half that keeps
    nothing is a config error on /task/heldout (`what` names the examples, `hint` the fix); "all" keeps
    what there is, even nothing (the task's evaluation says so)."""
    n = len(items)
    if heldout != "all" and heldout_size(n, heldout) == 0:
        raise WorkerError("config", heldout_message(heldout, n, what), hint, field="/task/heldout")
    return items[HELDOUT_HALVES[heldout]]


def heldout_message(heldout: str, n: int, what: str) -> str:
    return (
        f"task.heldout {heldout!r} keeps no {what}: the held-out set has {n} "
        f"(validation keeps the even-numbered, test the odd-numbered)"
    )


SYNTHETIC_HELDOUT_HINT = 'set task.synthetic.n_eval to at least 2, or task.heldout to "all"'
CAUSAL_HELDOUT_HINT = (
    "give the evaluation more held-out data (a larger task.eval_fraction, or a task.eval_data with more "
    'records), or set task.heldout to "all"'
)
