"""Run under torchrun by test_worker_ddp.py: rank 1's factors are perturbed; FactorSync must notice and
restore rank 0's state on every rank (and stay quiet when nothing drifted)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from riemannlora.methods import setup_method
from riemannlora.worker import ddp
from riemannlora.worker.distributed import DistContext, leave_process, mark_joined


def main() -> None:
    ctx = DistContext.from_env()
    dist.init_process_group("gloo")
    mark_joined()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8))
    setup = setup_method(model, rank=2, target_modules=["0", "2"], init="lora", optimizer="riemannion")
    messages: list[str] = []
    sync = ddp.FactorSync(model, setup.optimizer, ctx, lambda level, msg: messages.append(msg), interval=1)
    assert not sync.check(1), "identical ranks reported as drifted"
    reference = [t.clone() for t in sync.tensors()]
    if ctx.rank == 1:
        with torch.no_grad():
            model[0].B.add_(1e-6)
    assert sync.check(2), "the perturbation of rank 1 went unnoticed"
    assert messages and "rank(s) 1" in messages[-1], messages
    for before, after in zip(reference, sync.tensors(), strict=True):
        assert torch.equal(before, after), "rank 0's state was not restored"
    dist.destroy_process_group()
    print(f"rank {ctx.rank} ok")


if __name__ == "__main__":
    main()
    leave_process(0)  # as the worker ends a rank (riemannlora/worker/distributed.py says why)
