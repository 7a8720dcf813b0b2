"""Memory: optimizer state bytes and peak training memory, Riemannion vs AdamW on LoRA factors.

Each (method, rank) runs in its own child process (peak RSS cannot be reset inside a process): the child
builds the LLM-shaped stack (llm_stack.py) with one kind of adapter, records its resident memory, trains
`--steps` steps, and reports
- `state_bytes`: the sum of the optimizer's state tensors (exact, from `optimizer.state`);
- `peak_delta_bytes`: peak RSS during training (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) minus the
  RSS before the first step: activations, gradients, optimizer state and solver workspace;
- `adapter_bytes`: trainable parameters plus adapter buffers (Riemannion's A_L and B_R are buffers).

    OMP_NUM_THREADS=1 python bench/memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(method: str, rank: int, blocks: int, batch: int, seq: int, steps: int) -> dict[str, Any]:
    import torch
    from llm_stack import base_weights, optimizer_state_bytes, stack_from, trainable
    from riemannlora.adapters import adapter_layers, inject_adapters
    from riemannlora.optim import Riemannion

    torch.manual_seed(0)
    model = stack_from(base_weights(blocks, 2048, 8192))
    if method == "riemannion":
        inject_adapters(model, rank, ["attn", "up", "down"], parametrization="manifold")
        opt = Riemannion(model, lr=1e-4, momentum=0.9)
    else:
        inject_adapters(model, rank, ["attn", "up", "down"], parametrization="factors", alpha=2 * rank)
        opt = torch.optim.AdamW(trainable(model), lr=2e-4, foreach=True)
    x = torch.randn(batch, seq, 2048)
    y = torch.randn(batch, seq, 2048)
    adapter_bytes = sum(p.numel() * p.element_size() for p in trainable(model))
    for layer in adapter_layers(model).values():
        for name in ("A_L", "B_R"):
            t = getattr(layer, name, None)
            if t is not None:
                adapter_bytes += t.numel() * t.element_size()
    before = rss_bytes()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    return {
        "method": method,
        "rank": rank,
        "state_bytes": optimizer_state_bytes(opt),
        "adapter_bytes": adapter_bytes,
        "rss_before_bytes": before,
        "peak_rss_bytes": peak,
        "peak_delta_bytes": max(0, peak - before),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ranks", default=None, help="comma-separated (default 4,16,64; --quick 4,64)")
    ap.add_argument("--blocks", type=int, default=None)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--rank", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="memory.json")
    args = ap.parse_args(argv)
    blocks = args.blocks or (1 if args.quick else 2)
    if args.child:
        print(json.dumps(child(args.child, args.rank, blocks, args.batch, args.seq, args.steps)))
        return {}
    from common import machine, write_json

    rows = []
    t0 = time.perf_counter()
    ranks = args.ranks or ("4,64" if args.quick else "4,16,64")
    for rank in [int(r) for r in ranks.split(",")]:
        pair = {}
        for method in ("riemannion", "adamw"):
            cmd = [sys.executable, str(HERE / "memory.py"), "--child", method, "--rank", str(rank)]
            cmd += ["--blocks", str(blocks), "--batch", str(args.batch), "--seq", str(args.seq)]
            cmd += ["--steps", str(args.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=HERE)
            pair[method] = json.loads(out.stdout.strip().splitlines()[-1])
        r, a = pair["riemannion"], pair["adamw"]
        row = {
            "rank": rank,
            "riemannion": r,
            "adamw": a,
            "state_ratio": r["state_bytes"] / a["state_bytes"],
            "peak_delta_ratio": r["peak_delta_bytes"] / max(1, a["peak_delta_bytes"]),
        }
        rows.append(row)
        print(
            f"[memory] r={rank}: state {r['state_bytes'] / 2**20:.1f} vs {a['state_bytes'] / 2**20:.1f} MiB, "
            f"peak delta {r['peak_delta_bytes'] / 2**20:.1f} vs {a['peak_delta_bytes'] / 2**20:.1f} MiB",
            flush=True,
        )
    result = {
        "benchmark": "optimizer state and peak training memory, Riemannion vs AdamW on factors",
        "machine": machine(),
        "stack": {"blocks": blocks, "adapted_layers": 3 * blocks, "batch": args.batch, "seq_len": args.seq},
        "steps": args.steps,
        "rows": rows,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    path = write_json(args.out, result)
    print(f"[memory] wrote {path}", flush=True)
    return result


if __name__ == "__main__":
    main()
