"""Who this process is in a multi-process (torchrun) run.

docs/architecture.md "Scaling out": every rank trains, rank 0 alone writes events, status, checkpoints and
the adapter; everything that writes asks `ctx.is_main`. The process group and the DDP wrapper live in
riemannlora.worker.ddp.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

#: Set by riemannlora.worker.ddp once this process has joined a process group (read by `leave_process`).
_joined_group = False


def mark_joined() -> None:
    global _joined_group
    _joined_group = True


def leave_process(code: int) -> NoReturn:
    """End the process; a rank that joined a process group ends without interpreter finalization.

    Why (docs/architecture.md "Scaling out", ending a rank): a gloo worker thread can still hold the last
    reference to a finished collective, whose tensors own Python objects. If the main thread is already
    finalizing the interpreter when that thread drops it, the thread's GIL acquire ends the thread inside a
    noexcept destructor: std::terminate, SIGABRT, and torchrun reports a completed run as failed (seen in CI
    and reproduced: 5 of 30 two-rank runs on a loaded 2-core machine). By the time this is called the run
    owes nothing more: events are closed, status and checkpoints written, the process group destroyed;
    stdio and logging are flushed here and the process leaves with os._exit.
    """
    if not _joined_group:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing left to lose on it
            pass
    logging.shutdown()
    os._exit(code)


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
