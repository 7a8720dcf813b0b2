"""Helpers for the worker tests: run configs, a tiny Llama with a char tokenizer, event checks.

Nothing is downloaded: the model is built from a `LlamaConfig`, the tokenizer with `tokenizers`, the data
is written by the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NATIVE = Path(__file__).resolve().parents[1]

CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789 +-=?:.,'\n")


def synthetic_config(**over: Any) -> dict[str, Any]:
    """A small synthetic-lowrank config; keyword groups (train=..., method=...) are merged in."""
    cfg: dict[str, Any] = {
        "task": {
            "kind": "synthetic-lowrank",
            "synthetic": {"width": 16, "depth": 2, "target_rank": 2, "n_train": 256, "n_eval": 64},
        },
        "adapter": {"rank": 2},
        "method": {"init": "lora", "optimizer": "riemannion", "lr": 0.05},
        "train": {"steps": 12, "batch_size": 16, "device": "cpu", "seed": 3},
    }
    for group, values in over.items():
        if isinstance(values, dict) and isinstance(cfg.get(group), dict):
            cfg[group] = {**cfg[group], **values}
        else:
            cfg[group] = values
    return cfg


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


def assert_valid_events(events: list[dict[str, Any]]) -> None:
    from riemannlora.schemas import validate

    for e in events:
        errors = validate("event", e)
        assert not errors, f"event {e} violates the schema: {[str(x) for x in errors]}"


def assert_valid_status(run_dir: Path) -> dict[str, Any]:
    from riemannlora.schemas import validate

    status = json.loads((run_dir / "status.json").read_text())
    errors = validate("status", status)
    assert not errors, f"status.json violates the schema: {[str(x) for x in errors]}"
    return status


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(NATIVE) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["HF_HUB_OFFLINE"] = "1"
    return env


def worker_popen(
    *args: str, cwd: Path | None = None, hold: tuple[int, Path] | None = None
) -> subprocess.Popen:
    """The worker as a subprocess. `hold=(step, file)`: it waits after `step` until `file` exists
    (riemannlora/worker/hold.py), so a signal sent then arrives mid-run on any machine."""
    env = worker_env()
    if hold is not None:
        env["RIEMANNLORA_HOLD"] = f"{hold[0]}:{hold[1]}"
    return subprocess.Popen(
        [sys.executable, "-m", "riemannlora.worker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def wait_for_steps(proc, run_dir, n, timeout=120.0):
    """Wait until the worker has reported n training steps in events.jsonl."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker exited early: {proc.communicate()}"
        path = run_dir / "events.jsonl"
        if path.exists():
            lines = path.read_text().splitlines()
            done = [json.loads(x) for x in lines[:-1]]  # the last line may still be being written
            if sum(1 for e in done if e["type"] == "metric" and e["split"] == "train") >= n:
                return
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("worker did not reach the expected step in time")


def make_tiny_llama(
    directory: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0, init_range: float = 0.2
) -> Path:
    """A randomly initialised tiny Llama + a char-level fast tokenizer, saved with save_pretrained()."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        initializer_range=init_range,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


class StopAfter:
    """Stands in for `StopRequest`: asks to stop after `n` completed steps (the loop asks once per step)."""

    def __init__(self, n: int):
        self.n, self.checks, self.signal_name = n, 0, "test"

    @property
    def requested(self):
        self.checks += 1
        return self.checks > self.n

    def install(self):
        return self

    def uninstall(self):
        pass
