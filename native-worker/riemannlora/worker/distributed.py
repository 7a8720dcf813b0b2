"""Who this process is in a multi-process (torchrun) run.

docs/architecture.md "Scaling out": every rank trains, rank 0 alone writes events, status, checkpoints and
the adapter; everything that writes asks `ctx.is_main`. The process group and the DDP wrapper live in
riemannlora.worker.ddp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistContext:
        """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (riemannlora.worker.ddp joins the group)."""
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls(rank=0, world_size=1)
        rank = int(os.environ.get("RANK", "0") or 0)
        return cls(rank=rank, world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", rank) or 0))
