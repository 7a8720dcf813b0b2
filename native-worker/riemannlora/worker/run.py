"""`run --config FILE --run-dir DIR [--resume]`: one training run, from config to PEFT adapter.

Order of work (each step can fail with an explained `error` event):
1. Load and validate the config. Invalid: problems on stdout as `error` events (kind config / missing-path,
   each with its field) and `finished: failed`, exit 2; the run directory is not created. Only a queued
   directory (made by the engine, no run in it yet, not locked by another worker) also records the
   failure in its status.json and events.jsonl; a directory that holds a run is never written.
2. Lock the run directory (one writer: rundir.py) and pin it (config.json immutable once started),
   redirect stderr/logging to worker.log, status.json `running` with pid and host. From here on every
   write first checks that the directory is still there (a deleted run directory fails the run).
3. Build the task (model + data) on the device, then `riemannlora.methods.setup_method` (inject adapters,
   initialize, optimizer); `started` and `init` events.
4. `--resume`: restore the latest checkpoint (adapter, optimizer, scheduler, data position, RNG states).
5. The loop (riemannlora.training.loop), then the adapter in PEFT format and `finished`.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from typing import IO, Any

from riemannlora.config import ConfigError, ConfigProblem, load_config
from riemannlora.errors import (
    EXIT_BUSY,
    EXIT_CONFIG,
    EXIT_DISK,
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    WorkerError,
    explain,
)
from riemannlora.jsondoc import printable
from riemannlora.run_config import RunConfig, for_optimizer
from riemannlora.worker import ddp
from riemannlora.worker.distributed import DistContext
from riemannlora.worker.events import EventWriter
from riemannlora.worker.hold import ENV as HOLD_ENV
from riemannlora.worker.hold import HoldPoint, HoldSpecError
from riemannlora.worker.rundir import RunDir, RunDirBusy, RunDirError, RunDirGone, StatusFile

log = logging.getLogger("riemannlora.worker")


def _setup_logging(run_dir: RunDir, redirect_stderr: bool) -> logging.Handler:
    """Python logging (and, from the CLI, the process's stderr fd) go to worker.log, never to stdout."""
    handle = open(run_dir.log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the process
    if redirect_stderr:
        sys.stderr.flush()
        os.dup2(handle.fileno(), 2)  # native (C++/CUDA) warnings land in worker.log too
        sys.stderr = handle
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_riemannlora", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(handle)
    handler._riemannlora = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    return handler


def _teardown_logging(handler: logging.Handler, redirect_stderr: bool) -> None:
    """Detach the worker.log handler (in-process callers, e.g. tests, keep their own logging)."""
    logging.getLogger().removeHandler(handler)
    logging.captureWarnings(False)
    handler.flush()
    if not redirect_stderr:
        handler.stream.close()


def _config_failure(problems: list[ConfigProblem], run_dir: RunDir, stdout: IO[str]) -> int:
    """Report an unusable config; exit code 2. Nothing is created, and a directory that holds a run (or
    that another worker holds) is not touched: only a queued one records why it never started."""
    record = run_dir.path.is_dir() and not run_dir.has_started() and run_dir.try_lock()
    events = EventWriter(run_dir.events_path if record else None, stream=stdout)
    for p in problems:
        kind = "missing-path" if p.kind == "missing-path" else "config"
        events.emit("error", kind=kind, message=p.text(), hint=_config_hint(p), field=p.field)
    events.emit("finished", status="failed", summary={"steps": 0})
    events.close()
    if record:
        status = StatusFile(run_dir.status_path)
        first = problems[0]
        status.doc["started_at"] = None
        status.finish("failed", EXIT_CONFIG, {"kind": first.kind, "message": first.text()})
    for p in problems:
        print(f"config error: {printable(p.text(), 500)}", file=sys.stderr)
    return EXIT_CONFIG


def _is_file(stream: IO[str], path) -> bool:
    """Whether `stream` writes to the file at `path` (same device and inode)."""
    try:
        a, b = os.fstat(stream.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _config_hint(p: ConfigProblem) -> str:
    if p.kind == "missing-path":
        return "fix the path in the run config (relative paths are resolved from the config file's folder)"
    return "fix this field of the run config; `python -m riemannlora.worker validate --config FILE` lists all"


def _method_label(config: dict[str, Any]) -> str:
    return f"{config['method']['optimizer']}+{config['method']['init']}"


def run_command(
    config_path: str,
    run_dir_path: str,
    *,
    resume: bool = False,
    stdout: IO[str] | None = None,
    redirect_stderr: bool = False,
    stop: Any = None,
) -> int:
    """The whole `run` command; returns the exit code. Never raises (every failure becomes events).

    `stop`: a `StopRequest` to use instead of a fresh one bound to SIGINT/SIGTERM (for callers that embed
    the worker and stop it from another thread; its `request()` makes the run checkpoint and stop).
    """
    from riemannlora.worker.signals import StopRequest

    stdout = stdout if stdout is not None else sys.stdout
    # Signals are caught from the first moment: a stop during loading becomes a clean stop after setup.
    stop = stop if stop is not None else StopRequest()
    stop.install()
    run_dir = RunDir(run_dir_path)
    try:
        return _run(config_path, run_dir, resume, stdout, redirect_stderr, stop)
    finally:
        run_dir.release()
        stop.uninstall()


def _run(
    config_path: str, run_dir: RunDir, resume: bool, stdout: IO[str], redirect_stderr: bool, stop
) -> int:
    dist = DistContext.from_env()
    if not dist.is_main:  # under torchrun only rank 0 speaks the event protocol on stdout
        stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives with the process
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return _config_failure(exc.problems, run_dir, stdout)

    try:
        ddp.init_distributed(dist, config)
        ddp.prepare_run_dir(dist, run_dir, config, resume)
    except (RunDirError, WorkerError) as exc:
        err = exc if isinstance(exc, WorkerError) else WorkerError("config", str(exc), None)
        events = EventWriter(None, stream=stdout)
        events.emit("error", **err.event_fields())
        events.emit("finished", status="failed", summary={"steps": 0})
        # A launcher that gave us the run's own worker.log as stderr (the engine does) must not see the
        # refusal there: that log belongs to the worker that holds the directory.
        if not _is_file(sys.stderr, run_dir.log_path):
            print(f"error: {printable(err.message, 500)}", file=sys.stderr)
        return EXIT_BUSY if isinstance(exc, RunDirBusy) else EXIT_CONFIG

    reached = int((run_dir.read_status() or {}).get("step") or 0) if resume else 0
    handler = _setup_logging(run_dir, redirect_stderr)
    guard = run_dir.check_present
    events = EventWriter(
        run_dir.events_path, stream=stdout, is_main=dist.is_main, rank=dist.rank, guard=guard
    )
    status = StatusFile(run_dir.status_path, enabled=dist.is_main, guard=guard)
    status.update(state="running")
    log.info("run %s (resume=%s) pid %d config %s", run_dir.path, resume, os.getpid(), config_path)
    session = _Session(config, run_dir, events, status, stop, dist, resume)
    session.reached_step = reached
    try:
        return session.run()
    except BaseException as exc:  # noqa: BLE001 - the worker's contract: every failure becomes events
        return session.fail(exc)
    finally:
        events.close()
        _teardown_logging(handler, redirect_stderr)
        ddp.finalize(dist)


class _Session:
    """State of one `run` invocation (kept small: the loop itself lives in riemannlora.training)."""

    def __init__(self, config, run_dir: RunDir, events: EventWriter, status: StatusFile, stop, dist, resume):
        self.config = config
        self.run_dir = run_dir
        self.events = events
        self.status = status
        self.stop = stop
        self.dist = dist
        self.resume = resume
        self.loop = None
        self.t0 = time.time()
        self.reached_step = 0  # --resume: the step the run had reached (its status.json before this start)

    # ------------------------------------------------------------------------------------------------
    def run(self) -> int:
        import torch

        from riemannlora.tasks import build_task
        from riemannlora.training import EpochSampler, Loop, make_scheduler, resolve_device, resolve_precision
        from riemannlora.training.loop import run_loop
        from riemannlora.worker import checkpoint as ckpt

        cfg, train, method, adapter = (
            self.config,
            self.config["train"],
            self.config["method"],
            self.config["adapter"],
        )
        try:
            hold = HoldPoint.from_env()
        except HoldSpecError as exc:
            raise WorkerError(
                "config", str(exc), f"fix or unset {HOLD_ENV} in the worker's environment"
            ) from exc
        if train["threads"]:
            torch.set_num_threads(train["threads"])
        torch.manual_seed(train["seed"])
        device = ddp.rank_device(resolve_device(train["device"]), self.dist)
        precision = resolve_precision(train["precision"], device)
        if precision.note:
            self.events.log("warning", precision.note)

        self.events.log("info", f"building task {cfg['task']['kind']} on {device} ({precision.label})")
        task = build_task(cfg)
        task.to(device, precision.param_dtype)
        self.events.log("info", f"initializing adapters: {_method_label(cfg)}, rank {adapter['rank']}")
        model = task.model

        # Batches for the gradient-based starts come from their own seeded order, so the training data
        # order is the same whatever the init.
        init_sampler = ddp.shard(EpochSampler(task.num_train(), train["seed"] + 7919), self.dist)
        n_init = method.get("loi", {}).get("batches", 1)
        init_batches = [task.train_batch(init_sampler.next(train["batch_size"])) for _ in range(n_init)]

        def loss_fn(m, batch):
            with precision.autocast():
                return task.loss(m, batch)

        setup = self._setup_method(model, cfg, init_batches, loss_fn)
        optimizer = setup.optimizer
        scheduler = make_scheduler(optimizer, method["schedule"], method["warmup_steps"], train["steps"])
        sampler = ddp.shard(EpochSampler(task.num_train(), train["seed"]), self.dist)

        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        loop = Loop(
            model=model,
            task=task,
            optimizer=optimizer,
            scheduler=scheduler,
            sampler=sampler,
            precision=precision,
            device=device,
            train_cfg=train,
            grad_clip=method["grad_clip"],
            checkpoint_interval=cfg["output"]["checkpoint_interval"],
            emit=self.events.emit,
            save_checkpoint=lambda reason: self._checkpoint(reason),
            stop_requested=lambda: ddp.any_rank(self.stop.requested, self.dist, device),
            on_step=ddp.FactorSync(model, optimizer, self.dist, self.events.log),
            before_step=functools.partial(hold.wait, stop=self.stop, log=self.events.log)
            if hold
            else (lambda step: None),
            train_model=ddp.wrap_model(model, device, self.dist),
            mean_over_ranks=lambda v: ddp.mean_over_ranks(v, self.dist, device),
            sum_over_ranks=lambda v: ddp.sum_over_ranks(v, self.dist, device),
        )
        self.loop = loop

        resumed_from = None
        if self.dist.is_main:
            for name in ckpt.remove_partial(self.run_dir.checkpoints_path):
                log.info("removed %s, left by a save that was cut short", name)
        if self.resume:
            reached = self.reached_step
            found = ckpt.load_newest_readable(
                self.run_dir.checkpoints_path, lambda text: self.events.log("warning", text)
            )
            if found is None:
                self.events.log(
                    "warning",
                    "--resume: no readable checkpoint in this run directory; starting from step 0"
                    + (f" (the run had reached step {reached})" if reached else ""),
                )
            else:
                path, state = found
                if state["step"] < reached:
                    self.events.log(
                        "warning",
                        f"--resume: continuing from step {state['step']} ({path.name}); the run had reached "
                        f"step {reached}, so steps {state['step'] + 1}-{reached} are trained again",
                    )
                ckpt.load_adapter_state(model, state["adapter"])
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                sampler.load_state_dict(state["sampler"])
                loop.state.load_state_dict(state["loop"])
                ckpt.restore_rng_state(state["rng"])
                resumed_from = loop.state.step
                log.info("resumed from %s (step %d)", path, resumed_from)

        if ddp.active(self.dist):  # dropout masks: independent per rank, reproducible per (seed, rank, step)
            torch.manual_seed(train["seed"] + 1_000_003 * self.dist.rank + loop.state.step)
        from riemannlora.training.device import device_name

        self.events.emit(
            "started",
            device=str(device),
            device_name=device_name(device),
            dtype=precision.label,
            trainable_params=trainable,
            total_params=total,
            task=task.kind,
            method=_method_label(cfg),
            steps=train["steps"],
            start_step=loop.state.step,
            world_size=self.dist.world_size,
            global_batch=train["batch_size"] * train["grad_accum"],  # batch_size is global (worker/ddp.py)
            pid=os.getpid(),
            resumed=resumed_from is not None,
        )
        self.events.emit(
            "init",
            method=_method_label(cfg),
            seconds=setup.init_seconds,
            details={
                "description": setup.description,
                "parametrization": setup.parametrization,
                "lr": setup.lr,
                "adapters": len(setup.adapters),
                "adapter_rank": adapter["rank"],
                "task": task.describe(),
                **({"resumed_from_step": resumed_from} if resumed_from is not None else {}),
            },
        )
        self.status.update(step=loop.state.step)

        result = run_loop(loop, initial_eval=bool(train["eval_interval"]) and resumed_from is None)
        return self._finish(result, model, task)

    # ------------------------------------------------------------------------------------------------
    def _setup_method(self, model, cfg, init_batches, loss_fn):
        run_config = RunConfig.from_resolved(cfg)
        method, adapter, warnings = for_optimizer(run_config.method, run_config.adapter)
        for text in warnings:
            self.events.log("warning", text)
        try:
            return ddp.setup_method(
                model,
                method,
                adapter,
                self.dist,
                init_batches=init_batches,
                loss_fn=loss_fn,
                seed=run_config.train.seed,
            )
        except ValueError as exc:
            raise WorkerError(
                "config", str(exc), "change the adapter/method fields of the run config"
            ) from exc

    def _checkpoint(self, reason: str) -> None:
        from riemannlora.worker import checkpoint as ckpt

        loop = self.loop
        if not self.dist.is_main:
            return
        self.run_dir.check_present()
        state = {
            "format": ckpt.FORMAT_VERSION,
            "step": loop.state.step,
            "adapter": ckpt.adapter_state(loop.model),
            "optimizer": loop.optimizer.state_dict(),
            "scheduler": loop.scheduler.state_dict(),
            "sampler": loop.sampler.state_dict(),
            "loop": loop.state.state_dict(),
            "rng": ckpt.rng_state(),
        }
        path = ckpt.save_checkpoint(
            self.run_dir.checkpoints_path, loop.state.step, state, self.config["output"]["keep_checkpoints"]
        )
        rel = os.path.relpath(path, self.run_dir.path)
        self.events.emit("checkpoint", step=loop.state.step, path=rel, reason=reason)
        self.status.update(step=loop.state.step)

    def _summary(self, **extra: Any) -> dict[str, Any]:
        """The `finished` event's summary: raw numbers of this process (never smoothed; the engine's
        smoothed ones are run.json's `final_loss_smoothed` / `best_loss_smoothed`)."""
        st = self.loop.state if self.loop is not None else None
        summary: dict[str, Any] = {"process_wall_s": time.time() - self.t0}
        if st is not None:
            summary.update(steps=st.step, last_loss=st.last_loss, min_loss=st.best_loss)
            if st.last_eval:
                summary["final_eval"] = st.last_eval
        summary.update({k: v for k, v in extra.items() if v is not None})
        return summary

    def _finish(self, result, model, task) -> int:
        peak = result.peak_memory or None
        if result.status == "diverged":
            err = WorkerError(
                "diverged",
                result.message or "the loss became NaN or infinite",
                "lower the learning rate (method.lr), or set method.grad_clip (e.g. 1.0) or warmup_steps",
            )
            self.events.emit("error", **err.event_fields())
            self.events.emit("finished", status="diverged", summary=self._summary(peak_memory_bytes=peak))
            self.status.finish(
                "diverged", EXIT_DIVERGED, {"kind": err.kind, "message": err.message, "hint": err.hint}
            )
            return EXIT_DIVERGED
        adapter_path = None
        if result.status == "completed" and self.config["output"]["export_adapter"] and self.dist.is_main:
            from riemannlora.peft_io import export_peft

            self.run_dir.check_present()
            task_type = "CAUSAL_LM" if task.kind in ("causal-lm", "builtin-default") else None
            export_peft(
                model,
                self.run_dir.adapter_path,
                base_model_name_or_path=getattr(task, "model_ref", None),
                task_type=task_type,
            )
            adapter_path = os.path.relpath(self.run_dir.adapter_path, self.run_dir.path)
        if result.status == "stopped":
            self.events.log(
                "info",
                f"stopped by {self.stop.signal_name or 'request'} at step {self.loop.state.step}; "
                "--resume continues from the checkpoint",
            )
        self.events.emit(
            "finished",
            status=result.status,
            summary=self._summary(peak_memory_bytes=peak, adapter_path=adapter_path),
        )
        self.status.finish(result.status, EXIT_OK)
        return EXIT_OK

    def fail(self, exc: BaseException) -> int:
        """Report a failure wherever it can still be written: stdout always; events.jsonl and status.json
        unless the failure is that they cannot be written (run directory gone, disk full)."""
        err = explain(exc, self.config)
        if err.kind == "internal" or not isinstance(exc, WorkerError):
            log.error("run failed", exc_info=exc)
        else:
            log.error("run failed: %s", err.message)
        interrupted = isinstance(exc, KeyboardInterrupt)
        code = (
            EXIT_INTERRUPTED
            if interrupted
            else {"config": EXIT_CONFIG, "disk": EXIT_DISK}.get(err.kind, EXIT_FAILED)
        )
        gone = isinstance(err, RunDirGone)
        if gone:
            self.events.detach_file()
        last = {"kind": err.kind, "message": err.message}
        if err.hint:
            last["hint"] = err.hint
        state = "stopped" if interrupted else "failed"
        for report in (
            lambda: self.events.emit("error", **err.event_fields()),
            lambda: self.events.emit("finished", status=state, summary=self._summary()),
            (lambda: None) if gone else (lambda: self.status.finish(state, code, last)),
        ):
            try:
                report()
            except Exception:  # noqa: BLE001 - reporting must not mask the original failure
                log.exception("could not report the failure")
                self.events.detach_file()  # what the file cannot take, stdout still gets
        return code
