"""Convergence: Riemannion+LOI and RiemannianSGD+LOI against the LoRA baselines, through the real worker.

Every run is a real `riemannlora.worker` run (`run_command`, in process: the same code as
`python -m riemannlora.worker run --config F --run-dir D`); the numbers are read back from the run's
`events.jsonl`, exactly as the extension reads them.

Protocol (identical for every method, so the comparison is fair):
1. Learning-rate sweep: the same multiplicative grid around each optimizer's own default
   (`riemannlora.methods.DEFAULT_LR`), one seed, the same step budget; the lr with the lowest final eval
   loss wins (a diverged run counts as +inf).
2. Seeds: the chosen lr with `--seeds` seeds (seed 0 is reused from the sweep); mean ± std of the final eval
   loss and of the quality metric (synthetic-lowrank: relative distance of the learned deltas to the hidden
   change, lower is better; builtin-default: exact-match accuracy, higher is better).
3. Steps to reach LoRA-AdamW's mean final eval loss (first eval point at or below it, per seed, averaged
   over the seeds that reach it) and the speedup = LoRA-AdamW's steps / the method's steps.

    OMP_NUM_THREADS=1 python bench/convergence.py [--quick] [--tasks synthetic-lowrank,builtin-default]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, mean_std, write_json

# name -> method fields of the run config (init, optimizer, adapter extras)
METHODS: dict[str, dict[str, Any]] = {
    "Riemannion+LOI": {"init": "loi", "optimizer": "riemannion"},
    "RiemannianSGD+LOI": {"init": "loi", "optimizer": "riemannian-sgd"},
    "LoRA-AdamW": {"init": "lora", "optimizer": "adamw"},
    "LoRA-SGD": {"init": "lora", "optimizer": "sgd"},
    "PiSSA": {"init": "pissa", "optimizer": "adamw"},
    "LoRA-GA": {"init": "lora-ga", "optimizer": "adamw"},
    "DoRA": {"init": "lora", "optimizer": "adamw", "dora": True},
    "ScaledAdamW": {"init": "lora", "optimizer": "scaled-adamw"},
    "Muon": {"init": "lora", "optimizer": "muon"},
}
REFERENCE = "LoRA-AdamW"
MAX_LR = 10.0

# Budgets. The lr grid multiplies each optimizer's default lr; DEFAULT_LR values are LLM-sized starting
# points, so the grid reaches well above them (small tasks, short budgets want larger steps).
PROFILES = {
    "quick": {
        "seeds": 3,
        "synthetic-lowrank": {
            "steps": 120,
            "batch_size": 32,
            "rank": 4,
            "eval_every": 12,
            "grid": [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0],
        },
        # the built-in default costs ~10 s per short run on a CPU: --quick covers the goal's pair only
        "builtin-default": {
            "steps": 100,
            "batch_size": 16,
            "rank": 4,
            "eval_every": 50,
            "grid": [30.0, 100.0, 300.0, 1000.0],
            "methods": ["Riemannion+LOI", "LoRA-AdamW"],
        },
    },
    "full": {
        "seeds": 3,
        "synthetic-lowrank": {
            "steps": 400,
            "batch_size": 32,
            "rank": 4,
            "eval_every": 20,
            "grid": [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0],
        },
        "builtin-default": {
            "steps": 300,
            "batch_size": 16,
            "rank": 8,
            "eval_every": 30,
            "grid": [3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0],
        },
    },
}
QUALITY = {
    "synthetic-lowrank": ("delta_rel_error", "lower"),
    "builtin-default": ("accuracy", "higher"),
}


def run_config(task: str, method: dict[str, Any], lr: float, seed: int, budget: dict[str, Any]) -> dict:
    adapter: dict[str, Any] = {"rank": budget["rank"], "target_modules": "all-linear"}
    if method.get("dora"):
        adapter["dora"] = True
    return {
        "task": {"kind": task},
        "adapter": adapter,
        "method": {
            "init": method["init"],
            "optimizer": method["optimizer"],
            "lr": lr,
            # linear decay to 0 (the Hugging Face Trainer default) with a 5% warmup, for every method: the
            # normalized methods (Riemannion, Muon) take steps of a fixed size at a constant lr and would
            # stall at a noise floor proportional to it
            "schedule": "linear",
            "warmup_steps": max(1, budget["steps"] // 20),
            "grad_clip": 1.0,
        },
        "train": {
            "steps": budget["steps"],
            "batch_size": budget["batch_size"],
            "eval_interval": budget["eval_every"],
            "log_interval": budget["eval_every"],
            "seed": seed,
            "threads": 1,
            "device": "cpu",
        },
        "output": {"checkpoint_interval": 0, "keep_checkpoints": 1, "export_adapter": False},
    }


def run_once(config: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """One worker run in process; returns the eval curve, final metrics, status and timings."""
    from riemannlora.worker.run import run_command

    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "config.json"
    cfg_path.write_text(json.dumps(config))
    run_dir = workdir / "run"
    t0 = time.perf_counter()
    code = run_command(str(cfg_path), str(run_dir), stdout=io.StringIO())
    wall = time.perf_counter() - t0
    curve: list[tuple[int, float | None]] = []
    final: dict[str, Any] = {}
    status, init_s, error = "failed", None, None
    events_path = run_dir / "events.jsonl"
    lines = events_path.read_text().splitlines() if events_path.is_file() else []
    for line in lines:
        ev = json.loads(line)
        kind = ev.get("type")
        if kind == "eval":
            metrics = ev.get("metrics", {})
            curve.append((ev["step"], metrics.get("loss")))
            final = metrics
        elif kind == "init":
            init_s = ev.get("seconds")
        elif kind == "error":
            error = ev.get("message")
        elif kind == "finished":
            status = ev.get("status")
    return {
        "exit_code": code,
        "status": status,
        "error": error,
        "curve": curve,
        "final": final,
        "init_seconds": init_s,
        "wall_s": round(wall, 3),
    }


def final_loss(run: dict[str, Any]) -> float:
    loss = run["final"].get("loss") if run["status"] == "completed" else None
    return loss if loss is not None and math.isfinite(loss) else math.inf


def steps_to_reach(curve: list[tuple[int, float | None]], target: float) -> int | None:
    for step, loss in curve:
        if loss is not None and loss <= target:
            return step
    return None


def assets_problem(task: str) -> str | None:
    """Why `task` cannot run here (None when it can)."""
    if task != "builtin-default":
        return None
    try:
        from riemannlora import assets
    except ImportError as exc:
        return f"riemannlora.assets cannot be imported ({exc})"
    for path in (
        Path(assets.default_model_dir()) / "config.json",
        Path(assets.default_data_dir()) / "train.jsonl",
        Path(assets.default_data_dir()) / "eval.jsonl",
    ):
        if not path.is_file():
            return f"the built-in default assets are missing ({path} does not exist); not measured"
    return None


def bench_task(task: str, profile: dict[str, Any], methods: list[str], tmp: Path, log) -> dict[str, Any]:
    from riemannlora.methods import DEFAULT_LR

    budget = profile[task]
    problem = assets_problem(task)
    if problem:
        log(f"[convergence] {task}: SKIPPED: {problem}")
        return {"task": task, "skipped": problem}
    quality_key, better = QUALITY[task]
    out: dict[str, Any] = {"task": task, "budget": budget, "grid_multipliers": budget["grid"], "methods": {}}
    if budget.get("methods"):
        left_out = [m for m in methods if m not in budget["methods"]]
        methods = [m for m in methods if m in budget["methods"]]
        if left_out:
            out["methods_left_out"] = left_out
            log(f"[convergence] {task}: this profile runs {', '.join(methods)} only")
    for name in methods:
        spec = METHODS[name]
        base_lr = DEFAULT_LR[spec["optimizer"]]
        sweep = []
        for mult in budget["grid"]:
            lr = base_lr * mult
            if lr > MAX_LR:  # the run-config schema's bound (method.lr <= 10)
                continue
            run = run_once(run_config(task, spec, lr, 0, budget), tmp / task / name / f"lr{lr:g}-s0")
            sweep.append({"lr": lr, "run": run})
            log(
                f"[convergence] {task} {name} lr={lr:g} seed0 -> {final_loss(run):.4g} ({run['wall_s']:.1f}s)"
            )
        best = min(sweep, key=lambda s: final_loss(s["run"]))
        lr = best["lr"]
        tried = [s["lr"] for s in sweep]
        at_edge = lr in (min(tried), max(tried))
        runs = [best["run"]]
        for seed in range(1, profile["seeds"]):
            run = run_once(run_config(task, spec, lr, seed, budget), tmp / task / name / f"lr{lr:g}-s{seed}")
            runs.append(run)
            log(f"[convergence] {task} {name} lr={lr:g} seed{seed} -> {final_loss(run):.4g}")
        losses = [final_loss(r) for r in runs]
        quality = [r["final"].get(quality_key) for r in runs]
        lm, ls = mean_std(losses)
        qm, qs = mean_std([q for q in quality if q is not None])
        out["methods"][name] = {
            "init": spec["init"],
            "optimizer": spec["optimizer"],
            "default_lr": base_lr,
            "chosen_lr": lr,
            "chosen_lr_at_grid_edge": at_edge,
            "sweep": [{"lr": s["lr"], "final_eval_loss": _num(final_loss(s["run"]))} for s in sweep],
            "final_eval_loss": [_num(x) for x in losses],
            "final_eval_loss_mean": lm,
            "final_eval_loss_std": ls,
            "quality_metric": quality_key,
            "quality_better": better,
            "quality": quality,
            "quality_mean": qm,
            "quality_std": qs,
            "diverged_or_failed": sum(1 for r in runs if r["status"] != "completed"),
            "init_seconds_mean": mean_std([r["init_seconds"] or 0.0 for r in runs])[0],
            "wall_s_mean": mean_std([r["wall_s"] for r in runs])[0],
            "curves": [r["curve"] for r in runs],
        }
    ref = out["methods"].get(REFERENCE)
    if ref and ref["final_eval_loss_mean"] is not None:
        target = ref["final_eval_loss_mean"]
        out["target_loss"] = target
        ref_steps = _mean_steps(ref["curves"], target)
        for m in out["methods"].values():
            steps = _mean_steps(m["curves"], target)
            m["steps_to_reference_loss"] = steps
            m["seeds_reaching_reference_loss"] = sum(
                1 for c in m["curves"] if steps_to_reach(c, target) is not None
            )
            m["speedup_vs_reference"] = ref_steps / steps if steps and ref_steps else None
    return out


def _mean_steps(curves, target) -> float | None:
    reached = [s for s in (steps_to_reach(c, target) for c in curves) if s is not None]
    return sum(reached) / len(reached) if reached else None


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the --quick budget (short runs, 3-point grid)")
    ap.add_argument("--tasks", default="synthetic-lowrank,builtin-default")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=None, help="override the profile's seed count")
    ap.add_argument("--steps", type=int, default=None, help="override the profile's step budget")
    ap.add_argument("--out", default="convergence.json", help="file name under bench/results/")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    profile = json.loads(json.dumps(PROFILES["quick" if args.quick else "full"]))
    if args.seeds:
        profile["seeds"] = args.seeds
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    result: dict[str, Any] = {
        "benchmark": "convergence",
        "profile": "quick" if args.quick else "full",
        "machine": machine(),
        "tasks": {},
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rlora-bench-") as tmp:
        for task in [t for t in args.tasks.split(",") if t]:
            if args.steps:
                profile[task]["steps"] = args.steps
                profile[task]["eval_every"] = max(1, args.steps // 10)
            result["tasks"][task] = bench_task(task, profile, methods, Path(tmp), _log)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    path = write_json(args.out, result, Path(args.out_dir) if args.out_dir else None)
    _log(f"[convergence] wrote {path}")
    return result


def _log(msg: str) -> None:
    print(msg, flush=True)


if __name__ == "__main__":
    main()
