"""Optimizer-step time of Riemannion vs torch AdamW on LoRA factors, same process, same layer stack.

Only the optimizer step is timed (no forward/backward): that is where the methods differ. The stack is a
Llama-like block repeated: per block one 2048×2048 (attention-like) and one 8192×2048 plus one 2048×8192
(MLP-like) adapted layer, rank 16. Base weights are zero-stride stand-ins (the optimizers never read them),
so the benchmark needs only the adapter memory.

    OMP_NUM_THREADS=1 python bench/step_overhead_quick.py [--layers 8] [--rank 16]
        [--device cpu] [--steps 5] [--rounds 3] [--out bench/results/step_overhead_quick.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

# the package lives in native-worker/: importable without installing it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "native-worker"))


def stand_in_linear(in_f: int, out_f: int, device: str) -> nn.Linear:
    lin = nn.Linear(in_f, out_f, bias=False, device="meta")
    lin.weight = nn.Parameter(torch.zeros((), device=device).expand(out_f, in_f), requires_grad=False)
    return lin


def build(blocks: int, hidden: int, mlp: int, device: str) -> nn.Module:
    model = nn.Module()
    for i in range(blocks):
        block = nn.Module()
        block.attn = stand_in_linear(hidden, hidden, device)
        block.up = stand_in_linear(hidden, mlp, device)
        block.down = stand_in_linear(mlp, hidden, device)
        model.add_module(f"block{i}", block)
    return model


def fill_grads(params, gen_seed: int = 0) -> None:
    g = torch.Generator(device="cpu").manual_seed(gen_seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g).to(p.device, p.dtype)


def time_steps(opt, params, steps: int, device: str) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds per step (CPU time suffers less from a shared, loaded machine)."""
    fill_grads(params)
    for _ in range(3):  # warm-up: allocations, lazy state
        opt.step()
    wall, cpu = [], []
    for _ in range(steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8, help="number of blocks (3 adapted layers each)")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--mlp", type=int, default=8192)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, optimizers interleaved")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args()
    from riemannlora.adapters import adapter_layers, inject_adapters
    from riemannlora.optim.riemannion import Riemannion

    manifold = build(args.layers, args.hidden, args.mlp, args.device)
    torch.manual_seed(0)
    inject_adapters(manifold, args.rank, ["attn", "up", "down"], parametrization="manifold")
    r_params = [p for p in manifold.parameters() if p.requires_grad]
    riemannion = Riemannion(manifold, lr=1e-4, momentum=0.9, weight_decay=0.00316)

    factors = build(args.layers, args.hidden, args.mlp, args.device)
    inject_adapters(
        factors,
        args.rank,
        ["attn", "up", "down"],
        parametrization="factors",
        alpha=2 * args.rank,
    )
    f_params = [p for p in factors.parameters() if p.requires_grad]
    adamw = torch.optim.AdamW(f_params, lr=2e-4, weight_decay=0.0)
    adamw_foreach = torch.optim.AdamW(f_params, lr=2e-4, weight_decay=0.0, foreach=True)

    # interleave the optimizers so that load changes on a shared machine hit all of them alike
    runs = {"riemannion": ([], []), "adamw": ([], []), "adamw_foreach": ([], [])}
    for _ in range(args.rounds):
        for name, opt, params in (
            ("riemannion", riemannion, r_params),
            ("adamw", adamw, f_params),
            ("adamw_foreach", adamw_foreach, f_params),
        ):
            wall, cpu = time_steps(opt, params, args.steps, args.device)
            runs[name][0].extend(wall)
            runs[name][1].extend(cpu)
    med = {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in runs.items()}
    med_r, med_a, med_af = (
        med["riemannion"][0],
        med["adamw"][0],
        med["adamw_foreach"][0],
    )
    cpu_r, cpu_a, cpu_af = (
        med["riemannion"][1],
        med["adamw"][1],
        med["adamw_foreach"][1],
    )
    result = {
        "benchmark": "optimizer step time, Riemannion vs AdamW on factors",
        "layers": {
            "blocks": args.layers,
            "adapted_layers": len(adapter_layers(manifold)),
            "shapes_out_x_in": [
                [args.hidden, args.hidden],
                [args.mlp, args.hidden],
                [args.hidden, args.mlp],
            ],
            "rank": args.rank,
        },
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "steps_timed": args.steps * args.rounds,
        "riemannion_step_ms_median": round(1e3 * med_r, 3),
        "adamw_step_ms_median": round(1e3 * med_a, 3),
        "adamw_foreach_step_ms_median": round(1e3 * med_af, 3),
        "ratio_riemannion_over_adamw": round(med_r / med_a, 3),
        "ratio_riemannion_over_adamw_foreach": round(med_r / med_af, 3),
        "riemannion_step_cpu_ms_median": round(1e3 * cpu_r, 3),
        "adamw_step_cpu_ms_median": round(1e3 * cpu_a, 3),
        "adamw_foreach_step_cpu_ms_median": round(1e3 * cpu_af, 3),
        "cpu_time_ratio_riemannion_over_adamw": round(cpu_r / cpu_a, 3),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "trainable_params": {
            "manifold_B_and_Z1": sum(p.numel() for p in r_params),
            "factors": sum(p.numel() for p in f_params),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
