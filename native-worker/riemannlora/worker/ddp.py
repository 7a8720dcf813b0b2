"""Data-parallel training under torchrun (DistributedDataParallel), one process per device.

docs/architecture.md "Scaling out": every rank trains, rank 0 alone writes events, status, checkpoints and
the adapter. What each piece below guarantees:

- `init_distributed`: one process group (gloo on CPU, NCCL on CUDA with device ``cuda:LOCAL_RANK``).
- Batch semantics: ``train.batch_size`` is the GLOBAL micro-batch, summed over the ranks; each rank takes
  ``batch_size / world_size`` examples of it (`ShardedSampler`), so one optimizer step sees
  ``batch_size × grad_accum`` examples whatever the world size. The same config therefore trains the same
  model on 1 or N processes (up to float rounding), and a checkpoint written under one world size resumes
  under another (the sampler state is global: epoch and position in the shared permutation).
- `setup_method`: every rank injects the same adapters and builds the same optimizer. LOI (docs/method.md §5)
  draws the same Ω on every rank (it is seeded), and its probe products ``G Ω``, ``Gᵀ Y`` are averaged over
  the ranks (`loi_init(reduce_fn=...)`), so the sketch is the one of the global batch; the small QR/SVD
  that follow are computed identically everywhere and, in any case, the DDP wrapper broadcasts rank 0's
  adapter state at construction.
- `wrap_model`: DDP over the adapter parameters only (the frozen base is loaded identically by every rank
  and is not broadcast). The manifold layers' trainable ``Z1`` and ``B`` receive ``G B_R`` and ``Gᵀ A_L``
  (docs/method.md §2), which are linear in G, so DDP's gradient average gives exactly the global-batch
  Riemannian gradient and every rank takes the same Riemannian step.
- `FactorSync`: every N steps the ranks compare a hash of the adapter state and optimizer state and, on
  drift, re-broadcast rank 0's (logged as a `log` event).
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from riemannlora.errors import WorkerError
from riemannlora.worker.distributed import DistContext, mark_joined

#: Steps between two factor checksums (env RIEMANNLORA_DDP_CHECK_INTERVAL; 0 disables the check).
DEFAULT_CHECK_INTERVAL = 100


def _dist():
    import torch.distributed as dist

    return dist


def active(ctx: DistContext) -> bool:
    return ctx.world_size > 1


# ---------------------------------------------------------------------------------------------------------
# process group
def init_distributed(ctx: DistContext, config: dict[str, Any]) -> None:
    """Check the config against the world size and join the process group (no-op for one process)."""
    if not active(ctx):
        return
    train = config["train"]
    if train["batch_size"] % ctx.world_size:
        raise WorkerError(
            "config",
            f"train.batch_size {train['batch_size']} is the global micro-batch and must divide by the world "
            f"size {ctx.world_size} (each rank takes batch_size / world_size examples)",
            f"use a multiple of {ctx.world_size} (e.g. {_round_up(train['batch_size'], ctx.world_size)}), "
            "or launch with a number of processes that divides it",
            field="/train/batch_size",
        )
    dist = _dist()
    if not dist.is_available():
        raise WorkerError(
            "config", "this torch build has no torch.distributed", "install a standard torch build"
        )
    cuda = train["device"].startswith("cuda") or (train["device"] == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available() or ctx.local_rank >= torch.cuda.device_count():
            raise WorkerError(
                "config",
                f"rank {ctx.rank} (local rank {ctx.local_rank}) needs a CUDA device, "
                f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} visible",
                "launch at most one process per GPU (--nproc-per-node), or use train.device cpu",
                field="/train/device",
            )
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=30))
        mark_joined()  # this process ends through distributed.leave_process, without finalization


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def finalize(ctx: DistContext) -> None:
    """Leave the process group (no barrier: a peer that failed must not keep this rank waiting)."""
    if active(ctx) and _dist().is_initialized():
        _dist().destroy_process_group()


def rank_device(device: torch.device, ctx: DistContext) -> torch.device:
    """Under torchrun each rank drives its own GPU: ``cuda:LOCAL_RANK`` (train.device picks the kind only)."""
    if active(ctx) and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def prepare_run_dir(ctx: DistContext, run_dir, config: dict[str, Any], resume: bool) -> None:
    """Rank 0 creates/checks the run directory; the others learn its verdict (and fail the same way)."""
    if not active(ctx):
        run_dir.prepare(config, resume=resume)
        return
    from riemannlora.worker.rundir import RunDirBusy, RunDirError

    verdict: list[Any] = [None]
    if ctx.is_main:
        try:
            run_dir.prepare(config, resume=resume)
        except RunDirError as exc:
            verdict[0] = (isinstance(exc, RunDirBusy), str(exc))
    _dist().broadcast_object_list(verdict, src=0)
    if verdict[0] is not None:
        busy, message = verdict[0]
        kind = RunDirBusy if busy else RunDirError  # the exit code says which (EXIT_BUSY or EXIT_CONFIG)
        raise kind(message if ctx.is_main else f"rank 0 could not prepare the run directory: {message}")


# ---------------------------------------------------------------------------------------------------------
# data
class ShardedSampler:
    """DistributedSampler semantics on top of the global `EpochSampler`.

    Every rank holds an identical copy of the global sampler; `next(k)` draws the next k GLOBAL indices and
    returns this rank's contiguous slice of ``k / world_size``. Concatenating the ranks' slices gives the
    single-process batch, and the state (epoch, position) is the global one, so it resumes under any
    world size.
    """

    def __init__(self, inner, ctx: DistContext):
        self.inner = inner
        self.rank, self.world = ctx.rank, ctx.world_size

    def next(self, k: int) -> list[int]:
        if k % self.world:
            raise ValueError(f"batch of {k} does not split over {self.world} ranks")
        indices = self.inner.next(k)
        per = k // self.world
        return indices[self.rank * per : (self.rank + 1) * per]

    def state_dict(self) -> dict[str, int]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.inner.load_state_dict(state)


def shard(sampler, ctx: DistContext):
    return ShardedSampler(sampler, ctx) if active(ctx) else sampler


# ---------------------------------------------------------------------------------------------------------
# collectives on scalars (every rank must call them at the same point)
def _reduce(value: float, op, ctx: DistContext, device: torch.device) -> float:
    dist = _dist()
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=op)
    return float(t.item())


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True when any rank says so (stop requests: all ranks stop at the same step, or collectives hang)."""
    if not active(ctx):
        return bool(flag)
    return _reduce(1.0 if flag else 0.0, _dist().ReduceOp.MAX, ctx, device) > 0


def mean_over_ranks(value: float, ctx: DistContext, device: torch.device) -> float:
    if not active(ctx):
        return value
    return _reduce(value, _dist().ReduceOp.SUM, ctx, device) / ctx.world_size


def sum_over_ranks(value: float, ctx: DistContext, device: torch.device) -> float:
    if not active(ctx):
        return value
    return _reduce(value, _dist().ReduceOp.SUM, ctx, device)


# ---------------------------------------------------------------------------------------------------------
# method setup and the wrapper
def setup_method(model: nn.Module, method, adapter, ctx: DistContext, **options):
    """`riemannlora.methods.setup_method(model, method, adapter, **options)` (a MethodConfig and an
    AdapterConfig), with LOI's probe products averaged over the ranks.

    Every rank draws the same probes (same seed) on its own shard of the init batches; averaging the
    products gives the global-batch sketch, so all ranks compute the same start. Other inits need no data
    (lora, gaussian, pissa) or are rank-local (lora-ga, whose result DDP replaces by rank 0's).
    """
    from riemannlora.methods import setup_method as plain_setup

    if not active(ctx) or method.init != "loi":
        return plain_setup(model, method, adapter, **options)
    world = ctx.world_size

    def average(t: torch.Tensor) -> None:
        _dist().all_reduce(t)
        t.div_(world)

    return plain_setup(model, method, adapter, **options, init_reduce_fn=average)


def _adapter_names(model: nn.Module) -> set[str]:
    """Names (as in model.state_dict()) of the adapter-owned tensors: trainable params and adapter buffers."""
    from riemannlora.adapters import adapter_layers

    names: set[str] = set()
    for path, layer in adapter_layers(model).items():
        prefix = f"{path}." if path else ""
        names.update(prefix + k for k in layer.state_dict() if not k.startswith("base."))
    names.update(n for n, p in model.named_parameters() if p.requires_grad)
    return names


def wrap_model(model: nn.Module, device: torch.device, ctx: DistContext) -> nn.Module | None:
    """The DDP wrapper the loop trains through (None for one process).

    Only adapter tensors are synchronized at construction (rank 0's start is broadcast: a rank-local init
    cannot make the ranks disagree); the frozen base, identical on every rank by construction, is ignored
    to spare a full-model broadcast. Buffers are not re-broadcast every forward (``broadcast_buffers``):
    A_L/B_R change only in the optimizer step, identically on every rank, and `FactorSync` checks that.
    """
    if not active(ctx):
        return None
    from torch.nn.parallel import DistributedDataParallel as DDP

    keep = _adapter_names(model)
    ignore = [n for n in model.state_dict() if n not in keep]
    DDP._set_params_and_buffers_to_ignore_for_model(model, ignore)
    find_unused = os.environ.get("RIEMANNLORA_DDP_FIND_UNUSED", "0") not in ("", "0", "false")
    return DDP(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        broadcast_buffers=False,
        find_unused_parameters=find_unused,
    )


# ---------------------------------------------------------------------------------------------------------
# drift check
class FactorSync:
    """Every `interval` steps: hash the adapter and optimizer state on each rank; on any difference,
    broadcast rank 0's tensors and report which ranks had drifted through `log(level, message)`."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        ctx: DistContext,
        log: Callable[[str, str], Any],
        interval: int | None = None,
    ):
        self.model, self.optimizer, self.ctx, self.log = model, optimizer, ctx, log
        env = os.environ.get("RIEMANNLORA_DDP_CHECK_INTERVAL")
        self.interval = int(env) if interval is None and env else (interval or DEFAULT_CHECK_INTERVAL)
        if interval == 0 or (interval is None and env == "0"):
            self.interval = 0
        self.resyncs = 0

    def tensors(self) -> list[torch.Tensor]:
        """Adapter state then optimizer state, in an order that is the same on every rank."""
        keep = _adapter_names(self.model)
        out = [t for n, t in self.model.state_dict(keep_vars=True).items() if n in keep]
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                for key in sorted(self.optimizer.state.get(p, {})):
                    v = self.optimizer.state[p][key]
                    if torch.is_tensor(v):
                        out.append(v)
        return [t.data if isinstance(t, nn.Parameter) else t for t in out]

    def digest(self) -> int:
        h = hashlib.sha256()
        for t in self.tensors():
            h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        return int.from_bytes(h.digest()[:7], "little")  # fits an int64

    def __call__(self, step: int) -> None:
        if not active(self.ctx) or not self.interval or step % self.interval:
            return
        self.check(step)

    def check(self, step: int) -> bool:
        """Compare now; returns True when a re-broadcast happened (on every rank)."""
        dist = _dist()
        device = next((t.device for t in self.tensors()), torch.device("cpu"))
        mine = torch.tensor([self.digest()], dtype=torch.int64, device=device)
        gathered = [torch.zeros_like(mine) for _ in range(self.ctx.world_size)]
        dist.all_gather(gathered, mine)
        drifted = [r for r, d in enumerate(gathered) if int(d.item()) != int(gathered[0].item())]
        if not drifted:
            return False
        for t in self.tensors():
            dist.broadcast(t, src=0)
        self.resyncs += 1
        self.log(
            "warning",
            f"step {step}: adapter/optimizer state of rank(s) {', '.join(map(str, drifted))} drifted from "
            "rank 0 (non-deterministic kernels?); re-broadcast from rank 0",
        )
        return True
