"""Learning-rate schedules (`method.schedule`, `method.warmup_steps`) as a torch LambdaLR factor.

Linear warmup from lr/warmup to lr over `warmup_steps`, then constant, linear decay to 0, or cosine decay
to 0 at `total_steps`. The factor for step s (0-based, the step about to be taken) is:
    warmup:  (s + 1) / warmup                      for s < warmup
    constant 1;  linear (T - s) / (T - warmup);  cosine 0.5 (1 + cos(pi (s - warmup) / (T - warmup)))
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(schedule: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    if schedule not in SCHEDULES:
        raise ValueError(f"method.schedule must be one of {', '.join(SCHEDULES)} (got {schedule!r})")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, warmup_steps: int, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(schedule, warmup_steps, total_steps))
