"""Calibrate the built-in default's difficulty: a LoRA fine-tune of the default model on the default data.

Independent of the worker, so it checks the assets against plain PEFT: `--method peft` is PEFT's LoRA
(kaiming-uniform A, B = 0) with torch AdamW; `--method INIT:OPTIMIZER` (e.g. `loi:riemannion`,
`lora:adamw`, `pissa:adamw`, `lora:scaled-adamw`) uses `riemannlora.setup_method`. The loss is the worker's
`causal-lm` rule (`<bos>` + prompt, completion + `<eos>`, loss masked on the prompt), the metric its
exact-match accuracy of greedy completions. Prints accuracy before/after, process CPU seconds and wall time.

    OMP_NUM_THREADS=1 PYTHONPATH=. python tools/calibrate_default.py --method peft --steps 200 --lr 2e-3
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

T_PROCESS = time.perf_counter()

import torch  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def encode_batch(tokenizer, records):
    rows, labs = [], []
    for r in records:
        p = tokenizer(r["prompt"])["input_ids"]
        c = tokenizer(r["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(p + c)
        labs.append([-100] * len(p) + c)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros_like(ids)
    for i, (r, lab) in enumerate(zip(rows, labs, strict=True)):
        ids[i, : len(r)], labels[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), torch.tensor(lab), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def masked_loss(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=-100,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default=None, help="model dir (default: riemannlora.assets.default_model_dir())"
    )
    p.add_argument("--data", default=None, help="data dir with train.jsonl / eval.jsonl")
    p.add_argument("--method", default="peft")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--eval-every", type=int, default=0, help="also evaluate every N steps (0: only at the end)"
    )
    p.add_argument("--n-eval", type=int, default=200)
    args = p.parse_args(argv)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from riemannlora import assets

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_default_assets import greedy_exact_match

    model_dir = args.model or assets.default_model_dir()
    data_dir = Path(args.data) if args.data else assets.default_data_dir()
    train = [json.loads(x) for x in (data_dir / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (data_dir / "eval.jsonl").read_text().splitlines()][: args.n_eval]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.requires_grad_(False)
    t_loaded = time.perf_counter()
    torch.manual_seed(args.seed)
    acc0 = greedy_exact_match(model, tok, held)

    rng = random.Random(args.seed)
    order: list[int] = []

    def next_batch():
        nonlocal order
        if len(order) < args.batch:
            fresh = list(range(len(train)))
            rng.shuffle(fresh)
            order += fresh
        idx, order = order[: args.batch], order[args.batch :]
        return encode_batch(tok, [train[i] for i in idx])

    if args.method == "peft":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=TARGETS))
        opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=args.lr)
    else:
        import riemannlora as rl

        init, optimizer = args.method.split(":")
        setup = rl.setup_method(
            model,
            rank=args.rank,
            alpha=args.alpha,
            target_modules=TARGETS,
            init=init,
            optimizer=optimizer,
            lr=args.lr,
            init_batches=[next_batch() for _ in range(2)] if init in ("loi", "lora-ga") else None,
            loss_fn=masked_loss,
            seed=args.seed,
        )
        opt = setup.optimizer
        print(setup.description)

    c0, w0 = time.process_time(), time.perf_counter()
    model.train()
    for step in range(1, args.steps + 1):
        loss = masked_loss(model, next_batch())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == args.steps:
            msg = f"step {step:4d} loss {loss.item():.4f}"
            if args.eval_every and step % args.eval_every == 0 and step != args.steps:
                model.eval()
                msg += f"  eval acc {greedy_exact_match(model, tok, held):.1%}"
                model.train()
            print(msg, flush=True)
    train_cpu, train_wall = time.process_time() - c0, time.perf_counter() - w0
    model.eval()
    c1 = time.process_time()
    acc1 = greedy_exact_match(model, tok, held)
    summary = {
        "method": args.method,
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "rank": args.rank,
        "acc_before": acc0,
        "acc_after": acc1,
        "train_cpu_s": round(train_cpu, 1),
        "train_wall_s": round(train_wall, 1),
        "eval_cpu_s": round(time.process_time() - c1, 2),
        "startup_wall_s": round(t_loaded - T_PROCESS, 1),
        "process_cpu_s": round(time.process_time(), 1),
        "process_wall_s": round(time.perf_counter() - T_PROCESS, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
