"""The measuring helpers of the benchmarks compute what they claim (small CPU cases, no timing asserts)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from convergence import run_config, steps_to_reach  # noqa: E402
from llm_stack import adapted_pair, base_weights, optimizer_state_bytes, trainable  # noqa: E402


def test_steps_to_reach_is_the_first_eval_at_or_below_target():
    curve = [(0, 1.0), (10, 0.5), (20, None), (30, 0.2), (40, 0.1)]
    assert steps_to_reach(curve, 0.5) == 10
    assert steps_to_reach(curve, 0.15) == 40
    assert steps_to_reach(curve, 0.01) is None


def test_run_config_is_a_valid_worker_config():
    from riemannlora.config import load_config

    cfg = run_config(
        "synthetic-lowrank",
        {"init": "lora", "optimizer": "adamw", "dora": True},
        1e-3,
        2,
        {"steps": 5, "batch_size": 4, "rank": 2, "eval_every": 1},
    )
    import json
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(cfg, fh)
    resolved = load_config(fh.name)
    assert resolved["adapter"]["dora"] is True and resolved["method"]["lr"] == 1e-3
    assert resolved["train"]["seed"] == 2


def test_optimizer_state_bytes_counts_state_tensors_once():
    torch.manual_seed(0)
    weights = base_weights(1, 32, 64)
    manifold, factors = adapted_pair(weights, 4)
    from riemannlora.optim import Riemannion

    riem = Riemannion(manifold, lr=1e-3)
    adamw = torch.optim.AdamW(trainable(factors), lr=1e-3)
    x = torch.randn(3, 32)
    for model, opt in ((manifold, riem), (factors, adamw)):
        model(x).pow(2).mean().backward()
        opt.step()
    n = sum(p.numel() for p in trainable(factors))
    # AdamW: exp_avg + exp_avg_sq per parameter (fp32) plus a scalar step each
    assert optimizer_state_bytes(adamw) == 2 * 4 * n + 4 * len(trainable(factors))
    # Riemannion: one transported momentum (out×r + in×r per layer), the 4×r probe of the point it belongs
    # to and a scalar step per layer
    layers, rank = 3, 4
    assert optimizer_state_bytes(riem) == 4 * n + 4 * 4 * rank * layers + 4 * layers


def test_convergence_protocol_on_a_tiny_synthetic_budget(tmp_path):
    """Sweep -> chosen lr = argmin of the sweep; seeds at that lr; the reference's speed-up is 1."""
    from convergence import bench_task

    budget = {"steps": 6, "batch_size": 8, "rank": 2, "eval_every": 2, "grid": [1.0, 100.0]}
    profile = {"seeds": 2, "synthetic-lowrank": budget}
    out = bench_task("synthetic-lowrank", profile, ["LoRA-AdamW", "Riemannion+LOI"], tmp_path, lambda m: None)
    assert set(out["methods"]) == {"LoRA-AdamW", "Riemannion+LOI"}
    for m in out["methods"].values():
        losses = {s["lr"]: s["final_eval_loss"] for s in m["sweep"]}
        assert len(losses) == 2
        finite = {lr: v for lr, v in losses.items() if v is not None}
        assert m["chosen_lr"] == min(finite, key=finite.get)
        assert len(m["final_eval_loss"]) == 2 and m["final_eval_loss"][0] == losses[m["chosen_lr"]]
        assert m["quality_metric"] == "delta_rel_error" and all(q is not None for q in m["quality"])
        assert all(len(c) == 4 for c in m["curves"])  # evals at steps 0, 2, 4, 6
    ref = out["methods"]["LoRA-AdamW"]
    assert out["target_loss"] == ref["final_eval_loss_mean"]
    assert ref["speedup_vs_reference"] == 1.0
