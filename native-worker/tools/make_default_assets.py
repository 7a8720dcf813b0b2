"""Make the built-in default: a tiny pretrained causal LM and a fine-tuning dataset with a distribution shift.

Everything here is synthetic and produced on a CPU in a few minutes, deterministically from one seed:

1. A character-level tokenizer (Hugging Face `tokenizers`, wrapped as `PreTrainedTokenizerFast`).
2. A pretraining corpus in a small "language" of templated tasks — copying, two-digit addition, key-value
   lookup, the next letter of the alphabet, the length of a word, and sentences of a toy grammar.
3. A tiny Llama (`transformers.LlamaConfig`, so LoRA targets q/k/v/o/gate/up/down_proj exist) pretrained on
   that corpus from a seeded random init.
4. The fine-tuning data: a skill the model never saw — `encode <word> =` → the word with its letters swapped
   by two fixed tables, one for even and one for odd positions — over the same alphabet. The pretrained
   model copies the word (it knows `copy`) and scores 0% exact match; a LoRA fine-tune learns the code
   gradually over a few hundred steps (the shift the comparison is about).

Run from native-worker/ (writes riemannlora/assets/default/, prints timings):

    OMP_NUM_THREADS=1 python tools/make_default_assets.py            # data + tokenizer + pretraining
    python tools/make_default_assets.py --data-only --out /tmp/x     # the data files alone (seconds)

The data files are byte-identical for a given seed. The weights are bit-identical for a given seed, torch
build and thread count (`--threads`, default 1: CPU reductions split by thread count round differently).
Used by `riemannlora.assets` (the paths) and the `causal-lm` task (prompt/completion records, loss masked
on the prompt, exact-match accuracy of greedy completions).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import string
import sys
import time
from pathlib import Path

SEED = 20250712  # the paper's arXiv month, as good a seed as any
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "riemannlora" / "assets" / "default"

# ----------------------------------------------------------------------------------------------------
# The alphabet and the tokenizer

LETTERS = string.ascii_lowercase
DIGITS = string.digits
PUNCT = " +=.,:?>"
ALPHABET = LETTERS + DIGITS + PUNCT
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


def build_tokenizer():
    """A character-level fast tokenizer: one id per character, `<bos>` prepended by the post-processor.

    A BPE model without merges is exactly a character lookup; `Fuse` decodes by plain concatenation (the
    default decoder would join tokens with spaces).
    """
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + list(ALPHABET))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL["max_position_embeddings"],
    )


# ----------------------------------------------------------------------------------------------------
# The model

MODEL = dict(
    hidden_size=96,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=128,
    rope_theta=10000.0,
    tie_word_embeddings=True,
)


def build_model(tokenizer, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.02,
        **MODEL,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


# ----------------------------------------------------------------------------------------------------
# The pretraining language: one line per example, "<task> <input> = <output>", plus grammar sentences


def _word(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(lo, hi)))


def _copy(rng: random.Random) -> str:
    w = _word(rng, 2, 10)
    return f"copy {w} = {w}"


def _add(rng: random.Random) -> str:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return f"add {a}+{b} = {a + b}"


def _find(rng: random.Random) -> str:
    keys = rng.sample(LETTERS, rng.randint(2, 6))
    pairs = [(k, rng.choice(DIGITS)) for k in keys]
    k, v = rng.choice(pairs)
    return f"find {k} in {' '.join(a + b for a, b in pairs)} = {v}"


def _next(rng: random.Random) -> str:
    i = rng.randrange(len(LETTERS))
    return f"next {LETTERS[i]} = {LETTERS[(i + 1) % len(LETTERS)]}"


def _len(rng: random.Random) -> str:
    w = _word(rng, 1, 12)
    return f"len {w} = {len(w)}"


_NOUNS = "cat dog bird fish fox owl bee cow".split()
_ADJS = "red big small old new fast slow blue".split()
_VERBS = "sees likes finds eats helps calls".split()


def _sentence(rng: random.Random) -> str:
    def np() -> str:
        det = rng.choice(["a", "the"])
        return (
            f"{det} {rng.choice(_ADJS)} {rng.choice(_NOUNS)}"
            if rng.random() < 0.5
            else f"{det} {rng.choice(_NOUNS)}"
        )

    return f"{np()} {rng.choice(_VERBS)} {np()} ."


PRETRAIN_TASKS = {
    "copy": _copy,
    "add": _add,
    "find": _find,
    "next": _next,
    "len": _len,
    "sentence": _sentence,
}
# copy weighs most: reading a word back is the circuit the fine-tuning task has to bend
PRETRAIN_WEIGHTS = {"copy": 4, "add": 1, "find": 2, "next": 1, "len": 1, "sentence": 1}


def pretrain_corpus(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    names = sorted(PRETRAIN_TASKS)
    weights = [PRETRAIN_WEIGHTS[k] for k in names]
    return [PRETRAIN_TASKS[rng.choices(names, weights)[0]](rng) for _ in range(n)]


# ----------------------------------------------------------------------------------------------------
# The fine-tuning task: a position-dependent letter code (never seen in pretraining)
#
# `encode <word> =` -> the word with each letter swapped by one of two fixed tables: one for the letters at
# even positions (1st, 3rd, ...), one for those at odd positions. Each table swaps 10 pairs of letters and
# leaves 6 letters alone, so the base model's copy is partly right, and every letter at every parity is its
# own association to learn. Letters are drawn Zipf-distributed (weight 1/k for the k-th commonest), so the
# associations are learnt at different speeds: accuracy climbs gradually over the whole demo budget instead
# of in one jump, and its seed-to-seed spread stays small (measured: the assets README).

FINETUNE_TAG = "encode"
FINETUNE_LEN = (3, 6)
# The code is part of the task's definition, like a cipher key: the swapped pairs of each table, and the
# letters from commonest to rarest. Drawn once at random (random.Random(7)); this draw is kept because its
# measured seed-to-seed spread is small for every method (assets README "Choosing the task": another draw
# of the same design gave a harder instance where LoRA-AdamW's final token accuracy spread over 40 points).
CODE_EVEN = "hl sa vw jq zb yd gk xu tn ei"  # 10 swapped pairs for the 1st, 3rd, 5th letter
CODE_ODD = "in qe kr gd pt zv cf ha lm yo"  # 10 swapped pairs for the 2nd, 4th, 6th letter
LETTER_ORDER = "imuzyagrtshjolwvcbxpekfnqd"  # commonest first: weights 1/1, 1/2, ..., 1/26 (Zipf)
CODE_PAIRS = 10
N_TRAIN, N_EVAL = 4000, 1000


def code_tables() -> tuple[dict[str, str], dict[str, str]]:
    """The two swap tables (even positions, odd positions): involutions of `CODE_PAIRS` pairs each."""
    tables = []
    for pairs in (CODE_EVEN, CODE_ODD):
        table: dict[str, str] = {}
        for a, b in pairs.split():
            table[a], table[b] = b, a
        tables.append(table)
    return tables[0], tables[1]


def encode_word(word: str, tables: tuple[dict[str, str], dict[str, str]]) -> str:
    return "".join(tables[i % 2].get(c, c) for i, c in enumerate(word))


def finetune_record(word: str, tables: tuple[dict[str, str], dict[str, str]]) -> dict[str, str]:
    return {"prompt": f"{FINETUNE_TAG} {word} =", "completion": f" {encode_word(word, tables)}"}


def finetune_data(seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Disjoint train/eval records of distinct words, letters drawn Zipf-distributed (LETTER_ORDER)."""
    rng = random.Random(seed + 1)  # its own stream: changing the pretraining corpus leaves the data alone
    tables = code_tables()
    letters, weights = list(LETTER_ORDER), [1.0 / (k + 1) for k in range(len(LETTER_ORDER))]
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < N_TRAIN + N_EVAL:
        w = "".join(rng.choices(letters, weights, k=rng.randint(*FINETUNE_LEN)))
        if w in seen:
            continue
        seen.add(w)
        words.append(w)
    records = [finetune_record(w, tables) for w in words]
    return records[:N_TRAIN], records[N_TRAIN:]


def write_jsonl(path: Path, records: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True, ensure_ascii=True) + "\n")


# ----------------------------------------------------------------------------------------------------
# Pretraining and evaluation


def _batch(tokenizer, texts: list[str]):
    """Right-padded `<bos> text <eos>` rows; labels ignore the padding."""
    import torch

    rows = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def pretrain(
    model, tokenizer, corpus: list[str], *, steps: int, batch: int, lr: float, seed: int, log
) -> None:
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:  # linear warmup, cosine to 10%
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        texts = corpus[(step * batch) % len(corpus) :][:batch]
        if len(texts) < batch:
            texts += corpus[: batch - len(texts)]
        ids, mask, labels = _batch(tokenizer, texts)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"  step {step:5d}  loss {loss.item():.4f}  {time.perf_counter() - t0:6.1f}s")
    model.eval()


def greedy_exact_match(model, tokenizer, records: list[dict[str, str]], batch: int = 100) -> float:
    """Share of records whose greedy completion (to `<eos>`, stripped) equals the completion, stripped.

    The same rule as the worker's `causal-lm` task: left-padded prompts with `<bos>`, greedy decoding.
    """
    import torch

    correct = 0
    with torch.no_grad():
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            enc = [tokenizer(r["prompt"])["input_ids"] for r in chunk]
            width = max(len(e) for e in enc)
            ids = torch.full((len(enc), width), tokenizer.pad_token_id)
            mask = torch.zeros_like(ids)
            for i, e in enumerate(enc):
                ids[i, width - len(e) :] = torch.tensor(e)
                mask[i, width - len(e) :] = 1
            new = max(len(r["completion"]) for r in chunk) + 2
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            for row, r in zip(out[:, width:].tolist(), chunk, strict=True):
                if tokenizer.eos_token_id in row:
                    row = row[: row.index(tokenizer.eos_token_id)]
                text = tokenizer.decode(row, skip_special_tokens=True)
                correct += text.strip() == r["completion"].strip()
    return correct / max(1, len(records))


def pretrain_probe(seed: int, n: int = 100) -> dict[str, list[dict[str, str]]]:
    """Held-out examples of each pretraining task as prompt/completion pairs (for the printed report)."""
    rng = random.Random(seed + 2)
    probe: dict[str, list[dict[str, str]]] = {}
    for name in sorted(PRETRAIN_TASKS):
        if name == "sentence":
            continue
        probe[name] = []
        for _ in range(n):
            prompt, answer = PRETRAIN_TASKS[name](rng).split(" = ")
            probe[name].append({"prompt": prompt + " =", "completion": " " + answer})
    return probe


# ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (model/ and data/ inside)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--steps", type=int, default=3000, help="pretraining steps")
    p.add_argument("--batch", type=int, default=32, help="pretraining batch size")
    p.add_argument("--lr", type=float, default=3e-3, help="pretraining peak learning rate")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (part of bit-reproducibility)")
    p.add_argument("--data-only", action="store_true", help="write data/ only, no tokenizer or model")
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, flush=True)

    t_start = time.perf_counter()
    train, held = finetune_data(args.seed)
    write_jsonl(args.out / "data" / "train.jsonl", train)
    write_jsonl(args.out / "data" / "eval.jsonl", held)
    log(f"data: {len(train)} train + {len(held)} eval records -> {args.out / 'data'}")
    if args.data_only:
        return 0

    import torch

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: Llama {MODEL}, {n_params:,} parameters, vocab {len(tokenizer)}")
    corpus = pretrain_corpus(args.seed, args.steps * args.batch)
    log(f"pretraining: {args.steps} steps x batch {args.batch} on {args.threads} thread(s)")
    t0, c0 = time.perf_counter(), time.process_time()
    pretrain(
        model, tokenizer, corpus, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, log=log
    )
    t_pre, c_pre = time.perf_counter() - t0, time.process_time() - c0

    model_dir = args.out / "model"
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)

    for name, recs in pretrain_probe(args.seed).items():
        log(f"  pretraining task {name:5s}: exact match {greedy_exact_match(model, tokenizer, recs):.0%}")
    base = greedy_exact_match(model, tokenizer, held)
    log(f"  fine-tuning task ({FINETUNE_TAG}), base model, eval: exact match {base:.1%}")
    sizes = {
        str(f.relative_to(args.out)): f.stat().st_size for f in sorted(args.out.rglob("*")) if f.is_file()
    }
    for f, s in sizes.items():
        log(f"  {f:32s} {s / 1e6:7.3f} MB")
    total_mb = sum(sizes.values()) / 1e6
    t_all = time.perf_counter() - t_start
    log(f"total {total_mb:.2f} MB; pretraining {t_pre:.0f}s wall / {c_pre:.0f}s CPU; all {t_all:.0f}s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
