"""Who this process is in a (future) multi-process run.

DESIGN.md plans torchrun/DDP: every rank trains, rank 0 alone writes events, status, checkpoints and the
adapter. Today the worker runs one process; everything that writes asks `ctx.is_main`, so adding DDP
later means filling this object from the torchrun environment and wrapping the model, nothing more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistContext:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world > 1:
            from riemannlora.worker.errors import WorkerError

            raise WorkerError(
                "config",
                f"launched with WORLD_SIZE={world}, but this worker version trains in one process only",
                "launch with `python -m riemannlora.worker` (the launcher setting `python`), not torchrun",
            )
        return cls(rank=0, world_size=1)
