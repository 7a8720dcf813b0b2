"""The training loop: one readable loop in the spirit of nanoGPT's train.py.

Per step: `grad_accum` micro-batches (forward under the precision's autocast, backward of loss/accum),
global gradient-norm clipping, one optimizer step, one LR-scheduler step. Around it: a `metric` event
every `log_interval` steps (loss, lr, grad norm, tokens/s, memory, elapsed, task extras), evaluation every
`eval_interval` steps and at the end, checkpoints every `checkpoint_interval` steps, on stop and at the
end. A stop request (SIGINT/SIGTERM) is honoured between steps, so a step is never cut in half. A
non-finite loss or gradient norm ends the run as `diverged` before the optimizer touches the weights.

Step numbering: `state.step` counts completed optimizer steps; the metric event of the k-th step says
`"step": k` (1-based), and a checkpoint at step k resumes with step k + 1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .device import Precision
from .memory import memory_bytes
from .sampler import EpochSampler


@dataclass
class LoopState:
    """Counters that live in the checkpoint next to the model/optimizer/sampler states."""

    step: int = 0
    last_loss: float | None = None
    best_loss: float | None = None
    last_eval: dict[str, float] | None = None
    tokens_seen: int = 0

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in self.__dict__:
            if key in state:
                setattr(self, key, state[key])


@dataclass
class LoopResult:
    status: str  # completed | stopped | diverged
    message: str | None = None
    peak_memory: int = 0
    wall_s: float = 0.0


@dataclass
class Loop:
    """Everything the loop touches, built by the worker (riemannlora.worker.run)."""

    model: nn.Module
    task: Any  # riemannlora.tasks.base.Task
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: EpochSampler
    precision: Precision
    device: torch.device
    train_cfg: dict[str, Any]
    grad_clip: float | None
    checkpoint_interval: int
    emit: Callable[..., Any]  # EventWriter.emit
    save_checkpoint: Callable[[str], None]  # reason -> None (interval | stop | final)
    stop_requested: Callable[[], bool]
    on_step: Callable[[int], None] = lambda step: None
    # Called with the number of completed steps before each step and its stop check (the worker's test
    # hold point, riemannlora/worker/hold.py, waits here).
    before_step: Callable[[int], None] = lambda step: None
    state: LoopState = field(default_factory=LoopState)
    # Data parallel (riemannlora.worker.ddp): forward/backward go through the DDP wrapper, and the step's
    # loss (for reporting and the divergence check) and token count are combined over the ranks.
    train_model: nn.Module | None = None
    mean_over_ranks: Callable[[float], float] = lambda value: value
    sum_over_ranks: Callable[[float], float] = lambda value: value


def evaluate(loop: Loop) -> dict[str, float]:
    """Run the task's evaluation in eval mode and emit `metric` (split eval) and `eval` events."""
    model, cfg = loop.model, loop.train_cfg
    was_training = model.training
    model.eval()
    try:
        metrics = loop.task.evaluate(
            model,
            batch_size=cfg["batch_size"],
            max_batches=cfg["eval_batches"],
            autocast=loop.precision.autocast,
        )
    finally:
        model.train(was_training)
    loop.state.last_eval = dict(metrics)
    extra = {k: v for k, v in metrics.items() if k != "loss"}
    loop.emit("metric", step=loop.state.step, split="eval", loss=metrics.get("loss"), extra=extra or None)
    loop.emit("eval", step=loop.state.step, metrics=metrics)
    return metrics


def run_loop(loop: Loop, *, elapsed_offset: float = 0.0, initial_eval: bool = False) -> LoopResult:
    model, task, opt, cfg, st = loop.model, loop.task, loop.optimizer, loop.train_cfg, loop.state
    steps, accum, batch_size = cfg["steps"], cfg["grad_accum"], cfg["batch_size"]
    log_interval, eval_interval = cfg["log_interval"], cfg["eval_interval"]
    params = [p for p in model.parameters() if p.requires_grad]
    forward_model = loop.train_model if loop.train_model is not None else model
    clip = loop.grad_clip if loop.grad_clip is not None else math.inf

    model.train()
    if initial_eval and st.step == 0:
        evaluate(loop)  # the starting point, for "before/after" comparisons
    t_start = time.perf_counter()
    window_start, window_tokens, window_samples = t_start, 0, 0
    peak = 0

    while st.step < steps:
        loop.before_step(st.step)
        if loop.stop_requested():
            break
        lr = opt.param_groups[0]["lr"]
        # ---- forward/backward over grad_accum micro-batches
        loss_sum = 0.0
        for _ in range(accum):
            batch = task.train_batch(loop.sampler.next(batch_size))
            with loop.precision.autocast():
                loss = task.loss(forward_model, batch)
            (loss / accum).backward()
            loss_sum += float(loss.detach())
            window_tokens += task.batch_tokens(batch)
            window_samples += batch_size
        step_loss = loop.mean_over_ranks(loss_sum / accum)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        if not (math.isfinite(step_loss) and math.isfinite(grad_norm)):
            what, value = (
                ("loss", step_loss) if not math.isfinite(step_loss) else ("gradient norm", grad_norm)
            )
            loop.emit("metric", step=st.step + 1, split="train", loss=step_loss, lr=lr, grad_norm=grad_norm)
            return LoopResult(
                "diverged",
                f"the training {what} became {value} at step {st.step + 1}",
                peak,
                time.perf_counter() - t_start,
            )
        # ---- update
        opt.step()
        loop.scheduler.step()
        opt.zero_grad(set_to_none=True)
        st.step += 1
        st.last_loss = step_loss
        st.best_loss = step_loss if st.best_loss is None else min(st.best_loss, step_loss)
        loop.on_step(st.step)

        # ---- report
        if st.step % log_interval == 0 or st.step == steps:
            now = time.perf_counter()
            dt = max(now - window_start, 1e-9)
            mem = memory_bytes(loop.device)
            peak = max(peak, mem)
            window_tokens = int(loop.sum_over_ranks(window_tokens))
            st.tokens_seen += window_tokens
            loop.emit(
                "metric",
                step=st.step,
                split="train",
                loss=step_loss,
                lr=lr,
                grad_norm=grad_norm,
                tokens_per_s=window_tokens / dt,
                samples_per_s=window_samples / dt,
                memory_bytes=mem,
                elapsed=elapsed_offset + now - t_start,
                extra=task.train_extra(model) or None,
            )
            window_start, window_tokens, window_samples = now, 0, 0
        pause = time.perf_counter()
        if eval_interval and st.step % eval_interval == 0 and st.step != steps:
            evaluate(loop)
        if loop.checkpoint_interval and st.step % loop.checkpoint_interval == 0 and st.step != steps:
            loop.save_checkpoint("interval")
        window_start += time.perf_counter() - pause  # throughput counts training time only

    wall = time.perf_counter() - t_start
    peak = max(peak, memory_bytes(loop.device))
    if st.step < steps:
        loop.save_checkpoint("stop")
        return LoopResult("stopped", None, peak, wall)
    evaluate(loop)
    loop.save_checkpoint("final")
    return LoopResult("completed", None, peak, wall)
