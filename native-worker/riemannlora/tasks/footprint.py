"""Memory a task needs, estimated from its config alone (no torch, no model built): what `validate` uses
to refuse a config that cannot fit this machine (riemannlora/config.py). One function per task kind whose
footprint follows from its config; tasks that load a model from disk have none.
"""

from __future__ import annotations

from typing import Any


def synthetic_lowrank_bytes(config: dict[str, Any]) -> int:
    """Host memory the task needs, roughly (the refusal of an impossible config, config.py): frozen fp32
    weights, the float64 hidden changes, one float64 layer while the targets are computed, and the
    inputs/targets (fp32 kept, float64 while computed)."""
    syn = config["task"].get("synthetic", {})
    width, depth = int(syn.get("width", 64)), int(syn.get("depth", 3))
    samples = int(syn.get("n_train", 4096)) + int(syn.get("n_eval", 512))
    return depth * width * width * (4 + 8) + width * width * 8 + samples * width * (4 * 2 + 8 * 2)


ESTIMATES = {"synthetic-lowrank": synthetic_lowrank_bytes}
