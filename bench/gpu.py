"""GPU step overhead: Riemannion vs LoRA-AdamW on a Llama-3.2-1B-shaped model (random weights, bf16).

One command, sized for about five minutes on one H200:

    python bench/gpu.py                      # ranks 4,8,16,32,64 × batch 8,16,32,64,128, seq 256, cuda
    python bench/gpu.py --smoke              # a tiny config on CPU in seconds (what the test runs)

For every (rank, batch): a full training step (forward, backward, optimizer step) of Riemannion on manifold
adapters and of torch AdamW (fused on CUDA) on LoRA factors, all linear layers adapted, on the same frozen
base weights; warm-up, then interleaved rounds A/B/A/B with CUDA synchronization around each step.
Reported: median step ms of each, the overhead in percent (Riemannion / AdamW − 1), tokens/s, and peak
memory of each (`torch.cuda.max_memory_allocated` during its warm-up steps). The paper reports up to 35%
overhead. Results: bench/results/gpu.json with the date and the device.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_json  # noqa: E402

# Llama-3.2-1B (config.json of meta-llama/Llama-3.2-1B; written out so nothing is downloaded)
LLAMA_1B = {
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "rms_norm_eps": 1e-5,
}
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 256,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
}


def build_base(shape: dict[str, Any], dtype: torch.dtype, device: str) -> torch.nn.Module:
    import transformers

    cfg = transformers.LlamaConfig(**shape)
    with torch.device(device):
        model = transformers.LlamaForCausalLM(cfg).to(dtype)
    model.requires_grad_(False)
    return model


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_step(model, opt, ids):
    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()

    return step


def peak_of(step, device: str, warmup: int) -> int | None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    sync(device)
    return torch.cuda.max_memory_allocated() if device.startswith("cuda") else None


def measure(base, rank: int, batch: int, args, device: str) -> dict[str, Any]:
    from riemannlora.adapters import inject_adapters
    from riemannlora.optim import Riemannion

    torch.manual_seed(rank)
    manifold = copy.deepcopy(base)
    inject_adapters(manifold, rank, "all-linear", parametrization="manifold")
    riemannion = Riemannion(manifold, lr=1e-4, momentum=0.9)
    factors = copy.deepcopy(base)
    inject_adapters(factors, rank, "all-linear", parametrization="factors", alpha=2 * rank)
    params = [p for p in factors.parameters() if p.requires_grad]
    adamw = torch.optim.AdamW(params, lr=2e-4, fused=device.startswith("cuda"))
    vocab = base.config.vocab_size
    ids = torch.randint(0, vocab, (batch, args.seq), generator=torch.Generator().manual_seed(batch)).to(
        device
    )
    steps = {"riemannion": make_step(manifold, riemannion, ids), "adamw": make_step(factors, adamw, ids)}
    peaks = {name: peak_of(fn, device, args.warmup) for name, fn in steps.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        for name in list(steps) if r % 2 == 0 else reversed(list(steps)):
            for _ in range(args.steps):
                sync(device)
                t0 = time.perf_counter()
                steps[name]()
                sync(device)
                times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    tokens = batch * args.seq
    del manifold, factors, riemannion, adamw
    return {
        "rank": rank,
        "batch": batch,
        "seq": args.seq,
        "tokens_per_step": tokens,
        "riemannion_ms": 1e3 * med["riemannion"],
        "adamw_ms": 1e3 * med["adamw"],
        "overhead_pct": 100 * (med["riemannion"] / med["adamw"] - 1),
        "riemannion_tokens_per_s": tokens / med["riemannion"],
        "adamw_tokens_per_s": tokens / med["adamw"],
        "riemannion_peak_bytes": peaks["riemannion"],
        "adamw_peak_bytes": peaks["adamw"],
        "timed_steps_each": len(times["riemannion"]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--smoke", action="store_true", help="tiny config on CPU (seconds): checks the script runs"
    )
    ap.add_argument("--ranks", default=None, help="comma-separated (default 4,8,16,32,64)")
    ap.add_argument("--batches", default=None, help="comma-separated (default 8,16,32,64,128)")
    ap.add_argument("--seq", type=int, default=None, help="sequence length (default 256)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None, choices=["bf16", "fp32"])
    ap.add_argument(
        "--out", default=None, help="JSON path (default bench/results/gpu.json; smoke: gpu_smoke.json)"
    )
    args = ap.parse_args(argv)
    if args.smoke:
        shape, ranks, batches = TINY, [2, 4], [2, 4]
        args.seq = args.seq or 16
        args.rounds, args.steps, args.warmup = min(args.rounds, 2), 1, 1
        device, dtype = args.device or "cpu", args.dtype or "fp32"
    else:
        shape, ranks, batches = LLAMA_1B, [4, 8, 16, 32, 64], [8, 16, 32, 64, 128]
        args.seq = args.seq or 256
        device, dtype = args.device or "cuda", args.dtype or "bf16"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise SystemExit("bench/gpu.py: no CUDA device here; run it on a GPU machine or use --smoke")
    if args.ranks:
        ranks = [int(x) for x in args.ranks.split(",")]
    if args.batches:
        batches = [int(x) for x in args.batches.split(",")]
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    t0 = time.perf_counter()
    base = build_base(shape, torch_dtype, device)
    rows = []
    for rank in ranks:
        for batch in batches:
            try:
                row = measure(base, rank, batch, args, device)
            except torch.OutOfMemoryError as exc:
                row = {"rank": rank, "batch": batch, "seq": args.seq, "error": f"out of memory: {exc}"[:300]}
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            rows.append(row)
            if "error" in row:
                print(f"[gpu] r={rank} b={batch}: {row['error'][:80]}", flush=True)
            else:
                print(
                    f"[gpu] r={rank} b={batch}: riemannion {row['riemannion_ms']:.1f} ms, adamw "
                    f"{row['adamw_ms']:.1f} ms, overhead {row['overhead_pct']:+.1f}%",
                    flush=True,
                )
    ok = [r for r in rows if "error" not in r]
    result = {
        "benchmark": "GPU step overhead, Riemannion vs LoRA-AdamW, Llama-3.2-1B-shaped (random weights)",
        "smoke": args.smoke,
        "machine": machine(),
        "device": device,
        "dtype": dtype,
        "model_shape": shape,
        "target_modules": "all-linear",
        "rows": rows,
        "max_overhead_pct_batch_ge_16": max(
            (r["overhead_pct"] for r in ok if r["batch"] >= 16), default=None
        ),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    out = Path(args.out) if args.out else None
    name = out.name if out else ("gpu_smoke.json" if args.smoke else "gpu.json")
    path = write_json(name, result, out.parent if out else None)
    print(f"[gpu] wrote {path}", flush=True)
    return result


if __name__ == "__main__":
    main()
