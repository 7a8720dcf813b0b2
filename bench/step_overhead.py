"""Step overhead, optimizer state and LOI cost: Riemannion vs LoRA-AdamW on an LLM-shaped CPU proxy.

One process, one set of frozen base weights (llm_stack.py: hidden 2048, MLP 8192, `--blocks` blocks of
three adapted layers), for each rank and batch size:
- full training step (forward, backward, optimizer step) and the optimizer step alone, Riemannion vs
  torch AdamW (foreach) on LoRA factors, interleaved A/B/A/B in rounds so that machine load hits both;
- batched geometry (the optimizer stacks same-shape layers) vs per-layer geometry (one Riemannion per layer:
  the optimizer has no switch, so separate optimizers force one solver call per layer);
- optimizer state bytes (sum of the state tensors) of both;
- LOI (BackPropRSVD) seconds vs one training step, and LOI's share of a `--run-steps`-step run.
Times are the minimum over the interleaved samples (interference on a shared machine only adds time; the
medians are recorded too), in wall-clock and in process CPU seconds.

    OMP_NUM_THREADS=1 python bench/step_overhead.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings
from typing import Any

import torch
from common import machine, write_json
from llm_stack import adapted_pair, base_weights, optimizer_state_bytes, trainable

PROFILES = {
    "quick": {"blocks": 2, "ranks": [4, 8, 16, 64], "batches": [4, 16], "seq": 8, "rounds": 8, "steps": 1},
    "full": {"blocks": 4, "ranks": [4, 8, 16, 64], "batches": [4, 16], "seq": 16, "rounds": 10, "steps": 1},
}


def timed(fn, n: int) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def interleave(fns: dict[str, Any], rounds: int, steps: int) -> dict[str, dict[str, float]]:
    """Run each fn once to warm up, then `rounds` rounds of `steps` calls each, order alternating."""
    for fn in fns.values():
        fn()
    samples = {name: ([], []) for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            w, c = timed(fns[name], steps)
            samples[name][0].extend(w)
            samples[name][1].extend(c)
    # The minimum is the estimator: on a shared machine interference only ever adds time (as timeit does);
    # the medians are kept to show the spread.
    return {
        name: {
            "wall_ms": 1e3 * min(w),
            "cpu_ms": 1e3 * min(c),
            "wall_ms_median": 1e3 * statistics.median(w),
            "cpu_ms_median": 1e3 * statistics.median(c),
            "n": len(w),
        }
        for name, (w, c) in samples.items()
    }


def full_step(model, opt, x, y):
    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        for o in opt if isinstance(opt, list) else [opt]:
            o.step()

    return step


def opt_step(opt):
    opts = opt if isinstance(opt, list) else [opt]

    def step():
        for o in opts:
            o.step()

    return step


def fill_grads(model, x, y) -> None:
    for p in trainable(model):
        p.grad = None
    torch.nn.functional.mse_loss(model(x), y).backward()


@contextlib.contextmanager
def tangent_paths():
    """Count how each Riemannion bucket-step built its tangent basis: the structured bases (QRs of the m×r
    complements) or the plain QRs of the m×2r factors (docs/method.md §3); the share of structured steps
    is one of the step's goals (bench/README.md)."""
    from riemannlora.geometry import TangentBasis

    counts = {"structured": 0, "plain": 0}
    original = TangentBasis.__init__

    def counting(self, *args, **kwargs):
        original(self, *args, **kwargs)
        counts["structured" if self.structured else "plain"] += 1

    TangentBasis.__init__ = counting
    try:
        yield counts
    finally:
        TangentBasis.__init__ = original


def measure_rank_batch(weights, rank: int, batch: int, prof: dict[str, Any], hidden: int) -> dict[str, Any]:
    from riemannlora.adapters import adapter_layers
    from riemannlora.optim import Riemannion

    manifold, factors = adapted_pair(weights, rank)
    riemannion = Riemannion(manifold, lr=1e-4, momentum=0.9)
    adamw = torch.optim.AdamW(trainable(factors), lr=2e-4, foreach=True)
    gen = torch.Generator().manual_seed(rank * 1000 + batch)
    x = torch.randn(batch, prof["seq"], hidden, generator=gen)
    y = torch.randn(batch, prof["seq"], hidden, generator=gen)
    with tangent_paths() as paths:
        full = interleave(
            {"riemannion": full_step(manifold, riemannion, x, y), "adamw": full_step(factors, adamw, x, y)},
            prof["rounds"],
            prof["steps"],
        )
    fill_grads(manifold, x, y)
    fill_grads(factors, x, y)
    per_layer = [Riemannion([layer], lr=1e-4, momentum=0.9) for layer in adapter_layers(manifold).values()]
    opt_only = interleave(
        {
            "riemannion": opt_step(riemannion),
            "adamw": opt_step(adamw),
            "riemannion_per_layer": opt_step(per_layer),
        },
        prof["rounds"],
        max(3, prof["steps"]),
    )
    return {
        "rank": rank,
        "batch": batch,
        "tokens": batch * prof["seq"],
        "full_step": full,
        "optimizer_step": opt_only,
        "full_step_overhead_pct": 100 * (full["riemannion"]["wall_ms"] / full["adamw"]["wall_ms"] - 1),
        "full_step_overhead_cpu_pct": 100 * (full["riemannion"]["cpu_ms"] / full["adamw"]["cpu_ms"] - 1),
        "optimizer_step_ratio": opt_only["riemannion"]["wall_ms"] / opt_only["adamw"]["wall_ms"],
        "tangent_paths": paths,
        "structured_share": paths["structured"] / max(1, paths["structured"] + paths["plain"]),
        "batched_speedup_vs_per_layer": opt_only["riemannion_per_layer"]["wall_ms"]
        / opt_only["riemannion"]["wall_ms"],
        "optimizer_state_bytes": {
            "riemannion": optimizer_state_bytes(riemannion),
            "adamw": optimizer_state_bytes(adamw),
        },
        "trainable_params": {
            "riemannion": sum(p.numel() for p in trainable(manifold)),
            "adamw": sum(p.numel() for p in trainable(factors)),
        },
        "adapter_buffer_bytes_riemannion": sum(
            layer.A_L.numel() * layer.A_L.element_size() + layer.B_R.numel() * layer.B_R.element_size()
            for layer in adapter_layers(manifold).values()
        ),
    }


def measure_loi(weights, rank: int, batch: int, prof: dict[str, Any], hidden: int, run_steps: int) -> dict:
    """LOI seconds on the stack vs the median Riemannion training step; share of a run_steps-step run."""
    from riemannlora.init import loi_init
    from riemannlora.optim import Riemannion

    manifold, _ = adapted_pair(weights, rank)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(batch, prof["seq"], hidden, generator=gen)
    y = torch.randn(batch, prof["seq"], hidden, generator=gen)

    def loss_fn(model, b):
        return torch.nn.functional.mse_loss(model(b[0]), b[1])

    t0 = time.perf_counter()
    report = loi_init(manifold, [(x, y)], loss_fn, oversample=16, power_iters=1)
    loi_s = time.perf_counter() - t0
    opt = Riemannion(manifold, lr=1e-4, momentum=0.9)
    step = full_step(manifold, opt, x, y)
    step()
    wall, _ = timed(step, 3)
    step_s = statistics.median(wall)
    return {
        "rank": rank,
        "batch": batch,
        "loi_s": loi_s,
        "loi_backward_passes": report.backward_passes,
        "train_step_s": step_s,
        "loi_in_steps": loi_s / step_s,
        "run_steps": run_steps,
        "loi_fraction_of_run": loi_s / (loi_s + run_steps * step_s),
    }


def profile_step(weights, rank: int, batch: int, prof: dict[str, Any], hidden: int) -> dict[str, Any]:
    """Where a Riemannion full step spends its time (torch profiler, top operators by self CPU time)."""
    from riemannlora.optim import Riemannion
    from torch.profiler import ProfilerActivity, profile

    manifold, factors = adapted_pair(weights, rank)
    opt = Riemannion(manifold, lr=1e-4, momentum=0.9)
    adamw = torch.optim.AdamW(trainable(factors), lr=2e-4, foreach=True)
    x = torch.randn(batch, prof["seq"], hidden)
    y = torch.randn(batch, prof["seq"], hidden)
    out = {}
    for name, model, o in (("riemannion", manifold, opt), ("adamw", factors, adamw)):
        step = full_step(model, o, x, y)
        step()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as p:
            for _ in range(2):
                step()
        rows = sorted(p.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows) or 1
        out[name] = {
            "total_self_cpu_ms_per_step": total / 2e3,
            "top_ops": [
                {
                    "op": e.key,
                    "self_cpu_ms_per_step": e.self_cpu_time_total / 2e3,
                    "share_pct": 100 * e.self_cpu_time_total / total,
                    "calls_per_step": e.count / 2,
                }
                for e in rows[:12]
            ],
        }
    return {"rank": rank, "batch": batch, **out}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--mlp", type=int, default=8192)
    ap.add_argument("--blocks", type=int, default=None)
    ap.add_argument("--ranks", default=None, help="comma-separated ranks (default 4,8,16,64)")
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes in sequences")
    ap.add_argument("--run-steps", type=int, default=200, help="run length for LOI's share (the default run)")
    ap.add_argument("--profile", action="store_true", help="also profile one step (torch profiler)")
    ap.add_argument("--out", default="step_overhead.json")
    args = ap.parse_args(argv)
    prof = dict(PROFILES["quick" if args.quick else "full"])
    if args.blocks:
        prof["blocks"] = args.blocks
    if args.ranks:
        prof["ranks"] = [int(r) for r in args.ranks.split(",")]
    if args.batches:
        prof["batches"] = [int(b) for b in args.batches.split(",")]
    # the per-layer optimizers step the same layers as the batched one: each sees the others' writes as
    # a point its momentum does not belong to, and restarts that momentum, which does not change the cost
    warnings.filterwarnings("ignore", message=".*its momentum is reset.*")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    weights = base_weights(prof["blocks"], args.hidden, args.mlp)
    rows = []
    for rank in prof["ranks"]:
        for batch in prof["batches"]:
            row = measure_rank_batch(weights, rank, batch, prof, args.hidden)
            rows.append(row)
            print(
                f"[step] r={rank} b={batch}: full {row['full_step']['riemannion']['wall_ms']:.0f} vs "
                f"{row['full_step']['adamw']['wall_ms']:.0f} ms ({row['full_step_overhead_pct']:+.1f}%), "
                f"opt {row['optimizer_step']['riemannion']['wall_ms']:.1f} vs "
                f"{row['optimizer_step']['adamw']['wall_ms']:.1f} ms, per-layer "
                f"{row['optimizer_step']['riemannion_per_layer']['wall_ms']:.1f} ms",
                flush=True,
            )
    loi = [measure_loi(weights, r, prof["batches"][-1], prof, args.hidden, args.run_steps) for r in (8, 16)]
    for row in loi:
        print(f"[loi] r={row['rank']}: {row['loi_s']:.2f}s = {row['loi_in_steps']:.1f} steps", flush=True)
    result: dict[str, Any] = {
        "benchmark": "step overhead, optimizer state and LOI cost on an LLM-shaped CPU proxy",
        "profile": "quick" if args.quick else "full",
        "machine": machine(),
        "stack": {
            "blocks": prof["blocks"],
            "adapted_layers": 3 * prof["blocks"],
            "shapes_out_x_in": [[args.hidden, args.hidden], [args.mlp, args.hidden], [args.hidden, args.mlp]],
            "seq_len": prof["seq"],
            "batches": prof["batches"],
            "rounds": prof["rounds"],
            "steps_per_round": prof["steps"],
        },
        "rows": rows,
        "loi": loi,
    }
    if args.profile:
        result["profile_step"] = profile_step(weights, 16, prof["batches"][0], prof, args.hidden)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    path = write_json(args.out, result)
    print(f"[step] wrote {path}", flush=True)
    return result


if __name__ == "__main__":
    main()
