"""`causal-lm`: fine-tune any Hugging Face `AutoModelForCausalLM` on local (or hub) data.

Model: `task.model` is a local directory (config.json, weights, tokenizer files) or a hub id. Local paths are
recognised first; a hub id is tried only from the local cache, then — unless HF_HUB_OFFLINE /
TRANSFORMERS_OFFLINE is set or a 3-second connectivity probe fails — from the network, so an offline
machine gets a clear "pass a local path" error at once instead of a hang.

Data: `task.data` is a `.jsonl` (one JSON record per line), `.json` (a list of records, or an object with
one list of records) or `.txt` file (plain text), or a `datasets` hub id. Records are either plain text
(`text_field`) — tokenized, joined with EOS and cut into `seq_len` blocks, loss on every token — or
prompt/completion pairs (`prompt_field`, `completion_field`) — one sequence each, loss masked on the prompt.
Evaluation uses `task.eval_data` or a seeded `eval_fraction` hold-out (all of it, or by `task.heldout` its
even-numbered "validation" or odd-numbered "test" examples); its metrics are the token-weighted
loss, perplexity, for pairs `token_accuracy` (the share of completion tokens the argmax predicts given the
true prefix) and, when `eval_generate`, exact-match `accuracy` of greedy completions: the generated text
up to EOS, stripped, must equal the completion, stripped.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from riemannlora.errors import WorkerError, require
from riemannlora.heldout import CAUSAL_HELDOUT_HINT, heldout_part
from riemannlora.paths import looks_like_local_path

from .base import Task

IGNORE = -100
HUB_PROBE = ("huggingface.co", 443)


# ----------------------------------------------------------------------------------------------------
# Where models and data come from


def _offline_env() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _network_reachable(timeout: float = 3.0) -> bool:
    """A bounded connectivity probe (DNS included, which socket timeouts alone do not bound)."""
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection(HUB_PROBE, timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return result["ok"]


def _no_network_error(field: str, ref: str, what: str) -> WorkerError:
    return WorkerError(
        "network",
        f"{field} {ref!r} is not a local path, and the Hugging Face hub cannot be reached "
        f"({'offline mode is set' if _offline_env() else 'no network'})",
        f"download the {what} on a machine with network and pass its local path in {field}",
        field="/" + field.replace(".", "/"),
    )


def _check_local(field: str, ref: str, expected: str) -> Path | None:
    """The local path of `ref`, None for a hub id, or a missing-path error for an absent local path."""
    p = Path(ref).expanduser()
    if p.exists():
        return p
    if looks_like_local_path(ref):
        raise WorkerError(
            "missing-path",
            f"{field}: {ref} does not exist; expected {expected} there",
            f"fix {field} in the run config (relative paths are resolved from the config file's folder)",
            field="/" + field.replace(".", "/"),
        )
    return None


MODEL_EXPECTED = (
    "a Hugging Face model directory (config.json, model.safetensors or pytorch_model.bin, tokenizer files)"
)


def load_model_and_tokenizer(ref: str) -> tuple[nn.Module, Any]:
    transformers = require("transformers", "task kind causal-lm (Hugging Face models)")
    local = _check_local("task.model", ref, MODEL_EXPECTED)
    if local is not None:
        if not local.is_dir() or not (local / "config.json").is_file():
            raise WorkerError(
                "missing-path",
                f"task.model: {local} is not a model directory (no config.json); expected {MODEL_EXPECTED}",
                "point task.model at the folder written by save_pretrained()",
                field="/task/model",
            )
        return _from_pretrained(transformers, str(local), local_only=True)
    try:  # a hub id already in the local cache works offline
        return _from_pretrained(transformers, ref, local_only=True)
    except (OSError, ValueError):
        pass
    if _offline_env() or not _network_reachable():
        raise _no_network_error("task.model", ref, "model")
    return _from_pretrained(transformers, ref, local_only=False)


def _from_pretrained(transformers, ref: str, *, local_only: bool):
    # trust_remote_code=False, said explicitly: a model folder's `auto_map` must never run its Python (left
    # unset, transformers may ask on stdout, inside the event stream, and run it on a "y").
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        ref, local_files_only=local_only, trust_remote_code=False
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(
        ref, local_files_only=local_only, dtype=torch.float32, trust_remote_code=False
    )
    return model, tokenizer


def read_records(ref: str, field: str) -> list[dict[str, Any]] | str:
    """Records from a .jsonl/.json file, the text of a .txt file, or the train split of a hub dataset."""
    local = _check_local(field, ref, "a .jsonl, .json or .txt file")
    if local is None:
        datasets = require("datasets", f"{field} given as a datasets hub id ({ref!r})")
        if _offline_env() or not _network_reachable():
            raise _no_network_error(field, ref, "dataset (as a .jsonl file)")
        return [dict(r) for r in datasets.load_dataset(ref, split="train")]
    suffix = local.suffix.lower()
    text = local.read_text(encoding="utf-8")
    if suffix == ".txt":
        return text
    if suffix == ".jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise WorkerError(
                    "config",
                    f"{field}: {local} line {n} is not valid JSON ({exc.msg})",
                    "each line of a .jsonl file must be one JSON object",
                    field="/" + field.replace(".", "/"),
                ) from exc
        return records
    if suffix == ".json":
        doc = json.loads(text)
        if isinstance(doc, dict):
            lists = [v for v in doc.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise WorkerError(
                    "config",
                    f"{field}: {local} is a JSON object without exactly one list of records",
                    "use a list of records, or a .jsonl file",
                    field="/" + field.replace(".", "/"),
                )
            doc = lists[0]
        if not isinstance(doc, list):
            raise WorkerError(
                "config",
                f"{field}: {local} must hold a list of records",
                "use a list of records, or a .jsonl file",
                field="/" + field.replace(".", "/"),
            )
        return doc
    raise WorkerError(
        "config",
        f"{field}: {local} has an unsupported extension {suffix!r}",
        "use a .jsonl, .json or .txt file",
        field="/" + field.replace(".", "/"),
    )


# ----------------------------------------------------------------------------------------------------
# Examples


class Example:
    __slots__ = ("ids", "labels", "prompt", "completion")

    def __init__(
        self, ids: list[int], labels: list[int], prompt: str | None = None, completion: str | None = None
    ):
        self.ids, self.labels, self.prompt, self.completion = ids, labels, prompt, completion


class CausalLMTask(Task):
    kind = "causal-lm"
    token_unit = "tokens"

    def __init__(
        self,
        config: dict[str, Any],
        *,
        model_ref: str | None = None,
        data_ref: str | None = None,
        eval_ref: str | None = None,
    ):
        task = config["task"]
        self.cfg = task
        self.seq_len = int(task["seq_len"])
        self.seed = int(config["train"]["seed"])
        self.model_ref = model_ref or task["model"]
        self.model, self.tokenizer = load_model_and_tokenizer(self.model_ref)
        self.model.requires_grad_(False)
        if getattr(self.model.config, "use_cache", None) is not None:
            self.model.config.use_cache = False  # training: no KV cache (generation turns it on)
        tok = self.tokenizer
        self.eos_id = tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (self.eos_id or 0)

        data = read_records(data_ref or task["data"], "task.data")
        eval_data = task.get("eval_data") if eval_ref is None else eval_ref
        self.train_examples, self.eval_examples = self._split(data, eval_data)
        # task.heldout: the whole held-out set as built above, or its even- or odd-numbered half (disjoint,
        # and together the whole), so that a learning-rate search and the reported runs evaluate apart.
        self.heldout = task.get("heldout", "all")
        self.eval_examples = heldout_part(
            self.eval_examples, self.heldout, what="evaluation examples", hint=CAUSAL_HELDOUT_HINT
        )
        if not self.train_examples:
            raise WorkerError(
                "config",
                "task.data produced no training examples after the eval split",
                "add data or lower task.eval_fraction",
                field="/task/data",
            )
        self.device = torch.device("cpu")

    # ---- data -------------------------------------------------------------------------------------
    def _split(self, data, eval_ref) -> tuple[list[Example], list[Example]]:
        frac = float(self.cfg["eval_fraction"])
        if isinstance(data, str):
            blocks = self._text_blocks([data])
            if eval_ref:
                return blocks, self._examples(read_records(eval_ref, "task.eval_data"))
            n_eval = max(1, int(round(len(blocks) * frac))) if len(blocks) > 1 else 0
            return blocks[: len(blocks) - n_eval], blocks[len(blocks) - n_eval :]
        if eval_ref:
            return self._examples(data), self._examples(read_records(eval_ref, "task.eval_data"))
        order = list(range(len(data)))
        random.Random(self.seed).shuffle(order)  # a seeded hold-out: same split for every run of this seed
        n_eval = max(1, int(round(len(data) * frac))) if len(data) > 1 else 0
        eval_idx = set(order[:n_eval])
        train = [r for i, r in enumerate(data) if i not in eval_idx]
        held = [r for i, r in enumerate(data) if i in eval_idx]
        return self._examples(train), self._examples(held)

    def _examples(self, data) -> list[Example]:
        if isinstance(data, str):
            return self._text_blocks([data])
        pf, cf, tf = self.cfg["prompt_field"], self.cfg["completion_field"], self.cfg["text_field"]
        texts, pairs = [], []
        for n, record in enumerate(data, 1):
            if isinstance(record, str):
                texts.append(record)
            elif isinstance(record, dict) and pf in record and cf in record:
                pairs.append((str(record[pf]), str(record[cf])))
            elif isinstance(record, dict) and tf in record:
                texts.append(str(record[tf]))
            else:
                fields = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
                raise WorkerError(
                    "config",
                    f"data record {n} has neither {tf!r} nor {pf!r} + {cf!r} (it has: {fields})",
                    "set task.text_field (or task.prompt_field + task.completion_field) to your field names",
                    field="/task/text_field",
                )
        return self._text_blocks(texts) + self._pairs(pairs)

    def _encode(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _encode_many(self, texts: Sequence[str], special: bool) -> list[list[int]]:
        # one batched call: fast tokenizers encode a list in parallel, thousands of records in milliseconds
        return (
            [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=special)["input_ids"]]
            if texts
            else []
        )

    def _text_blocks(self, texts: Sequence[str]) -> list[Example]:
        stream: list[int] = []
        for ids in self._encode_many(texts, False):
            stream += ids + ([self.eos_id] if self.eos_id is not None else [])
        L = self.seq_len
        blocks = (
            [stream[i : i + L] for i in range(0, max(1, len(stream) - L + 1), L)] if len(stream) >= L else []
        )
        if not blocks and stream:
            blocks = [stream]
        return [Example(b, list(b)) for b in blocks if len(b) >= 2]

    def _pairs(self, pairs: Sequence[tuple[str, str]]) -> list[Example]:
        prompts = self._encode_many([p for p, _ in pairs], True)
        completions = self._encode_many([c for _, c in pairs], False)
        return [self._pair(pr, co, p, c) for pr, co, (p, c) in zip(prompts, completions, pairs, strict=True)]

    def _pair(self, p: list[int], c: list[int], prompt: str, completion: str) -> Example:
        """One prompt/completion sequence: loss on the completion and EOS only; fits in seq_len."""
        c = c + ([self.eos_id] if self.eos_id is not None else [])
        L = self.seq_len
        if len(c) >= L:
            p, c = [], c[:L]
        elif len(p) + len(c) > L:
            p = p[len(p) + len(c) - L :]  # keep the end of the prompt, next to the answer
        return Example(p + c, [IGNORE] * len(p) + c, prompt, completion)

    def _collate(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        width = max(len(e.ids) for e in examples)
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e.ids)
            ids[i, :n] = torch.tensor(e.ids)
            labels[i, :n] = torch.tensor(e.labels)
            mask[i, :n] = 1
        return {
            "input_ids": ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "labels": labels.to(self.device),
        }

    # ---- Task interface ---------------------------------------------------------------------------
    def num_train(self) -> int:
        return len(self.train_examples)

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        super().to(device, dtype)
        self.device = device

    def train_batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return self._collate([self.train_examples[i] for i in indices])

    def batch_tokens(self, batch: Any) -> int:
        return int(batch["attention_mask"].sum())

    @staticmethod
    def _token_losses(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        losses, count, _ = CausalLMTask._token_stats(model, batch, hits=False)
        return losses, count

    @staticmethod
    def _token_stats(
        model: nn.Module, batch: dict[str, torch.Tensor], *, hits: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Summed loss, number of scored tokens and, with `hits`, how many of them the argmax predicts
        (teacher-forced). Training asks without: the argmax over the vocabulary is evaluation-only work."""
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        # next-token prediction: position t predicts token t+1; loss in fp32 even under bf16 autocast
        shift_logits = logits[:, :-1, :].float()
        shift_labels = batch["labels"][:, 1:]
        losses = nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]),
            shift_labels.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        scored = shift_labels != IGNORE
        correct = ((shift_logits.argmax(-1) == shift_labels) & scored).sum() if hits else None
        return losses, scored.sum(), correct

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        total, count = self._token_losses(model, batch)
        return total / count.clamp(min=1)

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, *, batch_size: int, max_batches: int, autocast: Any
    ) -> dict[str, float]:
        examples = self.eval_examples[: batch_size * max_batches]
        if not examples:
            return {"loss": float("nan")}
        total, count, hits = 0.0, 0, 0
        for start in range(0, len(examples), batch_size):
            batch = self._collate(examples[start : start + batch_size])
            with autocast():
                s, n, c = self._token_stats(model, batch, hits=True)
            total += float(s)
            count += int(n)
            hits += int(c)
        loss = total / max(count, 1)
        metrics = {"loss": loss, "perplexity": math.exp(loss) if loss < 700 else float("inf")}
        pairs = [e for e in examples if e.completion is not None]
        if pairs and len(pairs) == len(examples) and count:
            # Share of completion tokens (EOS included) whose argmax prediction given the true prefix is right
            # (TRL's mean_token_accuracy): graded where exact match is all-or-nothing per record, so it has
            # a much smaller seed-to-seed spread; the comparisons' primary metric (docs/comparisons.md).
            metrics["token_accuracy"] = hits / count
        if pairs and self.cfg.get("eval_generate", True):
            correct = 0
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start : start + batch_size]
                with autocast():
                    outputs = self.greedy_complete(
                        model,
                        [e.prompt for e in chunk],
                        max(len(self._encode(e.completion, False)) for e in chunk) + 2,
                    )
                correct += sum(o.strip() == e.completion.strip() for o, e in zip(outputs, chunk, strict=True))
            metrics["accuracy"] = correct / len(pairs)
        return metrics

    @torch.no_grad()
    def greedy_complete(self, model: nn.Module, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy decoding of a batch of prompts (left-padded), each cut at its first EOS."""
        encoded = [self._encode(p, True)[-(self.seq_len - 1) :] or [self.pad_id] for p in prompts]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(encoded):
            ids[i, width - len(e) :] = torch.tensor(e)
            mask[i, width - len(e) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_id,
            use_cache=True,
        )
        texts = []
        for row in out[:, width:].tolist():
            if self.eos_id is not None and self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return texts

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_ref,
            "model_type": getattr(self.model.config, "model_type", None),
            "train_examples": len(self.train_examples),
            "eval_examples": len(self.eval_examples),
            "heldout": self.heldout,
            "seq_len": self.seq_len,
        }
