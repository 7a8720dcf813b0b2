"""`causal-lm` on a tiny Llama built from a config, with a char tokenizer and data written by the test."""

from __future__ import annotations

import io
import json
import random

import pytest
import torch
from worker_fixtures import assert_valid_events, make_tiny_llama, read_events, write_json

from riemannlora.config import apply_defaults
from riemannlora.errors import WorkerError
from riemannlora.tasks.causal_lm import IGNORE, CausalLMTask
from riemannlora.worker.run import run_command

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def copy_records(n, seed=0):
    """Prompt "<word>?" -> completion: its first letter (a rank-8 adapter learns it in ~60 steps)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        word = "".join(rng.choice("abcdefgh") for _ in range(4))
        out.append({"prompt": f"{word}?", "completion": word[0]})
    return out


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def config(model, data, **task):
    return {
        "task": {"kind": "causal-lm", "model": str(model), "data": str(data), "seq_len": 16, **task},
        "adapter": {"rank": 8},
        "method": {"init": "lora", "optimizer": "adamw", "lr": 0.02},
        "train": {"steps": 3, "batch_size": 16, "device": "cpu"},
    }


@pytest.mark.parametrize("model_type", ["llama", "evil-llama"], ids=["known-type", "unknown-type"])
def test_a_model_folders_remote_code_never_runs(tmp_path, model_type):
    # A model folder whose config maps the auto classes to its own Python files (transformers' auto_map):
    # the worker never imports them and asks nothing on stdout. A known model type loads the library's
    # class; an unknown one is refused with the reason (it would need the folder's code).
    model = make_tiny_llama(tmp_path / "model")
    plant = "import pathlib\npathlib.Path(__file__).with_name('PWNED').write_text('remote code ran')\n"
    for name in ("modeling_evil.py", "tokenization_evil.py", "configuration_evil.py"):
        (model / name).write_text(plant)
    cfg = json.loads((model / "config.json").read_text())
    cfg["model_type"] = model_type
    cfg["auto_map"] = {
        "AutoConfig": "configuration_evil.EvilConfig",
        "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM",
        "AutoTokenizer": ["tokenization_evil.EvilTokenizer", None],
    }
    (model / "config.json").write_text(json.dumps(cfg))
    data = write_jsonl(tmp_path / "d.jsonl", copy_records(40))
    cfg_path = write_json(tmp_path / "c.json", config(model, data))
    out = io.StringIO()
    code = run_command(str(cfg_path), str(tmp_path / "run"), stdout=out)
    assert not (model / "PWNED").exists()
    assert all(line.startswith("{") for line in out.getvalue().splitlines())  # only events on stdout
    events = read_events(tmp_path / "run")
    if model_type == "llama":
        assert code == 0 and events[-1]["status"] == "completed"
    else:
        error = next(e for e in events if e["type"] == "error")
        assert code != 0 and events[-1]["status"] == "failed"
        assert "trust_remote_code" in error["message"], error


def test_prompt_completion_records_mask_the_prompt(llama, tmp_path):
    data = write_jsonl(
        tmp_path / "d.jsonl", [{"prompt": "abc?", "completion": "b"}, {"q": "xyz=", "a": "9"}] * 5
    )
    cfg = config(llama, data, prompt_field="q", completion_field="a", eval_fraction=0.2)
    with pytest.raises(WorkerError) as missing:  # the first records have "prompt"/"completion", not q/a
        CausalLMTask(apply_defaults(cfg))
    assert missing.value.field == "/task/text_field" and "'q'" in missing.value.message

    data = write_jsonl(tmp_path / "d2.jsonl", [{"prompt": "abc?", "completion": "b"}] * 10)
    task = CausalLMTask(apply_defaults(config(llama, data, eval_fraction=0.2)))
    assert task.num_train() == 8 and len(task.eval_examples) == 2
    tok = task.tokenizer
    ex = task.train_examples[0]
    prompt_ids = tok("abc?")["input_ids"]
    assert prompt_ids[0] == tok.bos_token_id  # the tokenizer's BOS is kept on the prompt
    assert ex.ids == prompt_ids + tok("b", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ex.labels == [IGNORE] * len(prompt_ids) + ex.ids[len(prompt_ids) :]
    batch = task.train_batch([0, 1])
    # our masked loss equals transformers' own causal-LM loss with the same labels
    ours = task.loss(task.model, batch)
    theirs = task.model(**batch).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_long_pairs_keep_the_answer(llama, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "x" * 40, "completion": "abc"}] * 4)
    task = CausalLMTask(apply_defaults(config(llama, data)))
    ex = task.train_examples[0]
    assert len(ex.ids) == 16 and ex.labels[-4:] == ex.ids[-4:] and ex.labels[:12] == [IGNORE] * 12


@pytest.mark.parametrize("kind", ["txt", "json", "jsonl-text"])
def test_plain_text_is_cut_into_blocks(llama, tmp_path, kind):
    text = "the quick brown fox jumps over the lazy dog. " * 8
    if kind == "txt":
        data = tmp_path / "d.txt"
        data.write_text(text)
    elif kind == "json":
        data = write_json(tmp_path / "d.json", {"records": [{"text": text[:100]}, {"text": text[100:]}]})
    else:
        data = write_jsonl(tmp_path / "d.jsonl", [{"body": text[:100]}, {"body": text[100:]}])
    task = CausalLMTask(
        apply_defaults(config(llama, data, text_field="body" if kind == "jsonl-text" else "text"))
    )
    blocks = task.train_examples + task.eval_examples
    assert all(len(b.ids) == 16 and b.labels == b.ids for b in blocks)
    assert task.num_train() >= 1 and len(task.eval_examples) >= 1
    assert all(b.completion is None for b in blocks)


def test_hub_ids_fail_fast_offline_with_a_local_path_hint(llama, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = write_jsonl(tmp_path / "d.jsonl", copy_records(8))
    cfg_path = write_json(tmp_path / "c.json", config("someorg/some-model", data))
    out = io.StringIO()
    assert run_command(str(cfg_path), str(tmp_path / "run"), stdout=out) == 1
    error = next(json.loads(x) for x in out.getvalue().splitlines() if '"error"' in x)
    assert error["kind"] == "network" and error["field"] == "/task/model"
    assert "local path" in error["hint"] and "someorg/some-model" in error["message"]

    cfg_path = write_json(tmp_path / "c2.json", config(llama, "someorg/some-dataset"))
    out = io.StringIO()
    assert run_command(str(cfg_path), str(tmp_path / "run2"), stdout=out) == 1
    error = next(json.loads(x) for x in out.getvalue().splitlines() if '"error"' in x)
    try:
        import datasets  # noqa: F401

        assert error["kind"] == "network"
    except ImportError:
        assert error["kind"] == "missing-package" and 'pip install "datasets' in error["hint"]


def test_a_folder_that_is_not_a_model_is_explained(llama, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    data = write_jsonl(tmp_path / "d.jsonl", copy_records(8))
    cfg_path = write_json(tmp_path / "c.json", config(empty, data))
    out = io.StringIO()
    # refused like `validate` refuses it (exit 2, field named), before the run directory exists
    assert run_command(str(cfg_path), str(tmp_path / "run"), stdout=out) == 2
    assert not (tmp_path / "run").exists()
    error = next(json.loads(x) for x in out.getvalue().splitlines() if '"error"' in x)
    assert (
        error["kind"] == "missing-path"
        and error["field"] == "/task/model"
        and str(empty) in error["message"]
        and "config.json" in error["message"]
    )


def test_fine_tune_raises_exact_match_and_exports_a_loadable_peft_adapter(llama, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", copy_records(96, seed=1))
    evald = write_jsonl(tmp_path / "eval.jsonl", copy_records(16, seed=2))
    cfg = config(llama, data, eval_data=str(evald))
    cfg["train"].update(steps=60, eval_interval=30, log_interval=10)
    cfg_path = write_json(tmp_path / "c.json", cfg)
    assert run_command(str(cfg_path), str(tmp_path / "run"), stdout=io.StringIO()) == 0
    events = read_events(tmp_path / "run")
    assert_valid_events(events)
    evals = [e["metrics"] for e in events if e["type"] == "eval"]
    assert evals[0]["accuracy"] == 0.0 and evals[-1]["accuracy"] >= 0.75
    assert evals[-1]["loss"] < evals[0]["loss"] and evals[-1]["perplexity"] < evals[0]["perplexity"]
    started = (
        events[0] if events[0]["type"] == "started" else next(e for e in events if e["type"] == "started")
    )
    assert started["task"] == "causal-lm" and 0 < started["trainable_params"] < started["total_params"]
    train = [e for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert all(e["tokens_per_s"] > e["samples_per_s"] for e in train)  # real token counts, not samples

    # the exported adapter, loaded by PEFT on a fresh copy of the base, gives the trained model's logits
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    from riemannlora.worker.checkpoint import latest_checkpoint, load_adapter_state, load_checkpoint

    adapter_cfg = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["task_type"] == "CAUSAL_LM" and adapter_cfg["base_model_name_or_path"] == str(llama)
    loaded = peft.PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(llama), tmp_path / "run" / "adapter"
    )
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    task = CausalLMTask(resolved)
    from riemannlora.config import method_arguments
    from riemannlora.methods import setup_method

    kwargs, _ = method_arguments(resolved)
    setup_method(task.model, **kwargs)
    load_adapter_state(
        task.model, load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))["adapter"]
    )
    batch = task.train_batch([0, 1, 2])
    task.model.eval()
    loaded.eval()
    with torch.no_grad():
        ours = task.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        theirs = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)


def test_token_accuracy_is_the_share_of_completion_tokens_the_argmax_predicts(llama, tmp_path):
    import contextlib

    records = copy_records(12, seed=3) + [{"prompt": "ab?", "completion": "hello"}] * 3
    data = write_jsonl(tmp_path / "d.jsonl", records)
    task = CausalLMTask(apply_defaults(config(llama, data, eval_fraction=0.5)))
    model = task.model.eval()
    # by hand, one record at a time: the argmax at each position before a scored token, prompt not scored
    hits = count = 0
    for ex in task.eval_examples:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ex.ids])).logits[0]
        for t in range(1, len(ex.ids)):
            if ex.labels[t] != IGNORE:
                count += 1
                hits += int(logits[t - 1].argmax()) == ex.labels[t]
    n = len(task.eval_examples)
    metrics = task.evaluate(model, batch_size=4, max_batches=-(-n // 4), autocast=contextlib.nullcontext)
    assert count > n and metrics["token_accuracy"] == pytest.approx(hits / count, abs=1e-12)
    # a corpus of plain text has no completions: no token accuracy (the loss is the metric there)
    text = write_jsonl(tmp_path / "t.jsonl", [{"text": "the cat sees a dog . " * 4}] * 8)
    plain = CausalLMTask(apply_defaults(config(llama, text, eval_fraction=0.25)))
    assert "token_accuracy" not in plain.evaluate(
        plain.model.eval(), batch_size=4, max_batches=2, autocast=contextlib.nullcontext
    )
